"""Quality review: each call's automatic scorecard (and its failed items, for search), reviewers' notes and tags.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voicebot_calls") as batch:
        batch.add_column(sa.Column("scorecard", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("qa_results", sa.JSON(), nullable=True))
    op.create_table(
        "voicebot_call_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["voicebot_calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_voicebot_call_notes_call_id", "voicebot_call_notes", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_voicebot_call_notes_call_id", table_name="voicebot_call_notes")
    op.drop_table("voicebot_call_notes")
    with op.batch_alter_table("voicebot_calls") as batch:
        batch.drop_column("qa_results")
        batch.drop_column("scorecard")
