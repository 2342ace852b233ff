"""Call records name the cluster node that carries the call (``cluster.node_id``).

A node that dies mid-call cannot close its own records: a surviving node closes the open records of the lost
node (outcome ``node_lost``), and a node that starts closes only its own leftovers, never its peers' live calls.
Records made before this revision, and on a single node, have none (NULL).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voicebot_calls") as batch:
        batch.add_column(sa.Column("node_id", sa.String(length=64), nullable=True))
    op.create_index("ix_voicebot_calls_node_id", "voicebot_calls", ["node_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_voicebot_calls_node_id", "voicebot_calls")
    with op.batch_alter_table("voicebot_calls") as batch:
        batch.drop_column("node_id")
