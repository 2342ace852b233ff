"""Supervisor alerts with their lifecycle (raised, acknowledged, assigned, resolved when the call ends), and who
took a call over from the bot (``voicebot_calls.taken_over_by`` / ``taken_over_at``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("voicebot_calls") as batch:
        batch.add_column(sa.Column("taken_over_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("taken_over_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "voicebot_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acked_by", sa.String(length=64), nullable=True),
        sa.Column("acked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assigned_to", sa.String(length=64), nullable=True),
        sa.Column("assigned_by", sa.String(length=64), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_voicebot_alerts_call_id", "voicebot_alerts", ["call_id"])
    op.create_index("ix_voicebot_alerts_assigned_to", "voicebot_alerts", ["assigned_to"])
    op.create_index("ix_voicebot_alerts_open", "voicebot_alerts", ["resolved_at", "raised_at"])


def downgrade() -> None:
    op.drop_index("ix_voicebot_alerts_open", table_name="voicebot_alerts")
    op.drop_index("ix_voicebot_alerts_assigned_to", table_name="voicebot_alerts")
    op.drop_index("ix_voicebot_alerts_call_id", table_name="voicebot_alerts")
    op.drop_table("voicebot_alerts")
    with op.batch_alter_table("voicebot_calls") as batch:
        batch.drop_column("taken_over_at")
        batch.drop_column("taken_over_by")
