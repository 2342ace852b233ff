"""The US state of a customer's address (``customers.state``, a two-letter code), said with a changed address.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a customer table made by the dialogs library's own create_all (then adopted) has the column already
    if not context.is_offline_mode() and \
            "state" in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("customers")}:
        return
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("state", sa.String(length=2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("state")
