"""Quality review and analytics: each call's automatic scorecard (and its results as text, for search), reviewers'
notes and tags, the intents of each call as rows (filled in from the calls' JSON lists) for per-intent figures, and
covering indexes for the analytics' figures per bucket.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

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
    intents = op.create_table(
        "voicebot_call_intents",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["voicebot_calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id", "intent"),
    )
    op.create_index("ix_voicebot_call_intents_start_intent", "voicebot_call_intents",
                    ["start", "intent", "outcome", "agent_id"])
    op.create_index("ix_voicebot_calls_start_figures", "voicebot_calls",
                    ["start", "outcome", "agent_id", "end", "frustration_max"])
    op.create_index("ix_voicebot_transfers_at_figures", "voicebot_transfers",
                    ["at", "agent_id", "queue", "wait_s", "talk_s", "outcome"])
    if context.is_offline_mode():
        # A printed script (`voicebot db upgrade --sql`) cannot read rows: say what it leaves out.
        op.execute("-- the intents of calls recorded before this revision are not copied into voicebot_call_intents "
                   "by a printed script; per-intent analytics count calls from now on")
        return
    calls = sa.table("voicebot_calls", sa.column("id", sa.String()), sa.column("start", sa.DateTime(timezone=True)),
                     sa.column("intents", sa.JSON()), sa.column("outcome", sa.String()),
                     sa.column("agent_id", sa.String()))
    bind = op.get_bind()
    rows = []
    query = sa.select(calls.c.id, calls.c.start, calls.c.intents, calls.c.outcome, calls.c.agent_id)
    for call_id, start, names, outcome, agent_id in bind.execute(query):
        for name in dict.fromkeys(n for n in names or [] if isinstance(n, str)):
            rows.append({"call_id": call_id, "intent": name[:64], "start": start, "outcome": outcome,
                         "agent_id": agent_id})
            if len(rows) >= 5000:
                op.bulk_insert(intents, rows)
                rows = []
    if rows:
        op.bulk_insert(intents, rows)


def downgrade() -> None:
    op.drop_index("ix_voicebot_transfers_at_figures", table_name="voicebot_transfers")
    op.drop_index("ix_voicebot_calls_start_figures", table_name="voicebot_calls")
    op.drop_index("ix_voicebot_call_intents_start_intent", table_name="voicebot_call_intents")
    op.drop_table("voicebot_call_intents")
    op.drop_index("ix_voicebot_call_notes_call_id", table_name="voicebot_call_notes")
    op.drop_table("voicebot_call_notes")
    with op.batch_alter_table("voicebot_calls") as batch:
        batch.drop_column("qa_results")
        batch.drop_column("scorecard")
