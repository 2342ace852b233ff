"""The schema of voicebot before migrations (commit cb5a9b1): customers, call records, users, callbacks, hand-offs.

On an empty database this creates every table. A database made before migrations existed (each store ran
``create_all``, the call and user stores added new nullable columns) is adopted in place: its tables and rows
are kept, a missing table is created, a missing nullable column is added (as the old migrator did), and calls
recorded before their search columns existed get them filled in from their turns. Indexes such a database
lacks are the next revision's work.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.schema import CreateIndex, CreateTable

from voicebot.storage.schema import SchemaError

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

log = logging.getLogger("voicebot.storage.schema")

# The tables as this revision makes them, written out (never imported from the models, which move on).
TABLES = sa.MetaData()
sa.Table(
    "audit_log", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("actor", sa.String(length=60), nullable=False),
    sa.Column("contact_id", sa.Integer(), nullable=True),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.Column("entity", sa.String(length=40), nullable=False),
    sa.Column("entity_id", sa.Integer(), nullable=True),
    sa.Column("action", sa.String(length=40), nullable=False),
    sa.Column("before", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("after", sa.JSON(none_as_null=True), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_customer_id", "customer_id"),
)
sa.Table(
    "customers", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("first_name", sa.String(length=80), nullable=False),
    sa.Column("last_name", sa.String(length=80), nullable=False),
    sa.Column("email", sa.String(length=200), nullable=True),
    sa.Column("phone", sa.String(length=20), nullable=True),
    sa.Column("date_of_birth", sa.Date(), nullable=True),
    sa.Column("postcode", sa.String(length=16), nullable=True),
    sa.Column("address_line", sa.String(length=200), nullable=True),
    sa.Column("city", sa.String(length=100), nullable=True),
    sa.Column("country", sa.String(length=2), nullable=True),
    sa.Column("pin_hash", sa.String(length=200), nullable=True),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_customers_phone", "phone"),
)
sa.Table(
    "contacts", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("channel", sa.String(length=16), nullable=False),
    sa.Column("caller_id", sa.String(length=40), nullable=True),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.Column("started_at", sa.DateTime(), nullable=False),
    sa.Column("ended_at", sa.DateTime(), nullable=True),
    sa.Column("outcome", sa.String(length=40), nullable=True),
    sa.Column("summary", sa.Text(), nullable=True),
    sa.Column("intents", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("transcript", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("handoff", sa.JSON(none_as_null=True), nullable=True),
    sa.Column("frustration_max", sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_contacts_caller_id", "caller_id"),
    sa.Index("ix_contacts_customer_id", "customer_id"),
    sa.Index("ix_contacts_started_at", "started_at"),
)
sa.Table(
    "orders", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("number", sa.String(length=5), nullable=False),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.Column("placed_at", sa.DateTime(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("carrier", sa.String(length=40), nullable=True),
    sa.Column("tracking_number", sa.String(length=40), nullable=True),
    sa.Column("shipped_at", sa.DateTime(), nullable=True),
    sa.Column("delivered_at", sa.DateTime(), nullable=True),
    sa.Column("eta", sa.Date(), nullable=True),
    sa.Column("total", sa.Numeric(precision=10, scale=2), nullable=False),
    sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("number"),
    sa.Index("ix_orders_customer_id", "customer_id"),
)
sa.Table(
    "subscriptions", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.Column("plan", sa.String(length=60), nullable=False),
    sa.Column("monthly_price", sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("started_at", sa.DateTime(), nullable=False),
    sa.Column("renews_at", sa.DateTime(), nullable=True),
    sa.Column("cancelled_at", sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_subscriptions_customer_id", "customer_id"),
)
sa.Table(
    "verification_attempts", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.Integer(), nullable=False),
    sa.Column("contact_id", sa.Integer(), nullable=True),
    sa.Column("at", sa.DateTime(), nullable=False),
    sa.Column("method", sa.String(length=20), nullable=False),
    sa.Column("success", sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_verification_attempts_customer_id", "customer_id"),
)
sa.Table(
    "invoices", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.Column("subscription_id", sa.Integer(), nullable=True),
    sa.Column("issued_at", sa.DateTime(), nullable=False),
    sa.Column("amount", sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("description", sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
    sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_invoices_customer_id", "customer_id"),
)
sa.Table(
    "order_items", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("order_id", sa.Integer(), nullable=False),
    sa.Column("sku", sa.String(length=20), nullable=False),
    sa.Column("name", sa.String(length=120), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("unit_price", sa.Numeric(precision=10, scale=2), nullable=False),
    sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_order_items_order_id", "order_id"),
)
sa.Table(
    "returns", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("order_id", sa.Integer(), nullable=False),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("rma", sa.String(length=20), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(["customer_id"], ["customers.id"]),
    sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("rma"),
    sa.Index("ix_returns_customer_id", "customer_id"),
    sa.Index("ix_returns_order_id", "order_id"),
)
sa.Table(
    "callback_requests", TABLES,
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("call_id", sa.String(length=128), nullable=False),
    sa.Column("caller", sa.String(length=128), nullable=True),
    sa.Column("queue", sa.String(length=64), nullable=False),
    sa.Column("reason", sa.String(length=32), nullable=False),
    sa.Column("handoff", sa.JSON(), nullable=False),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_callback_requests_call_id", "call_id"),
    sa.Index("ix_callback_requests_queue", "queue"),
    sa.Index("ix_callback_requests_status", "status"),
)
sa.Table(
    "voicebot_audit", TABLES,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("username", sa.String(length=64), nullable=False),
    sa.Column("action", sa.String(length=32), nullable=False),
    sa.Column("call_id", sa.String(length=64), nullable=True),
    sa.Column("detail", sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_voicebot_audit_at", "at"),
    sa.Index("ix_voicebot_audit_call_id", "call_id"),
    sa.Index("ix_voicebot_audit_username", "username"),
)
sa.Table(
    "voicebot_calls", TABLES,
    sa.Column("id", sa.String(length=64), nullable=False),
    sa.Column("channel", sa.String(length=16), nullable=False),
    sa.Column("caller_id", sa.String(length=128), nullable=True),
    sa.Column("dialled", sa.String(length=128), nullable=True),
    sa.Column("start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end", sa.DateTime(timezone=True), nullable=True),
    sa.Column("outcome", sa.String(length=32), nullable=True),
    sa.Column("end_reason", sa.String(length=32), nullable=True),
    sa.Column("intents", sa.JSON(), nullable=True),
    sa.Column("frustration_max", sa.Float(), nullable=True),
    sa.Column("agent_id", sa.String(length=64), nullable=True),
    sa.Column("customer_id", sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_voicebot_calls_agent_id", "agent_id"),
    sa.Index("ix_voicebot_calls_customer_id", "customer_id"),
    sa.Index("ix_voicebot_calls_frustration_max", "frustration_max"),
    sa.Index("ix_voicebot_calls_start", "start"),
)
sa.Table(
    "voicebot_transfer_turns", TABLES,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("call_id", sa.String(length=64), nullable=False),
    sa.Column("speaker", sa.String(length=8), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_voicebot_transfer_turns_call_id", "call_id"),
)
sa.Table(
    "voicebot_transfers", TABLES,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("call_id", sa.String(length=64), nullable=False),
    sa.Column("queue", sa.String(length=64), nullable=True),
    sa.Column("agent_id", sa.String(length=64), nullable=True),
    sa.Column("outcome", sa.String(length=32), nullable=False),
    sa.Column("wait_s", sa.Float(), nullable=False),
    sa.Column("talk_s", sa.Float(), nullable=True),
    sa.Column("callback_id", sa.Integer(), nullable=True),
    sa.Column("voicemail_s", sa.Float(), nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_voicebot_transfers_call_id", "call_id"),
)
sa.Table(
    "voicebot_users", TABLES,
    sa.Column("username", sa.String(length=64), nullable=False),
    sa.Column("role", sa.String(length=16), nullable=False),
    sa.Column("agent_id", sa.String(length=64), nullable=True),
    sa.Column("password_hash", sa.String(length=256), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("username"),
)
sa.Table(
    "voicebot_voicemails", TABLES,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("call_id", sa.String(length=64), nullable=False),
    sa.Column("queue", sa.String(length=64), nullable=False),
    sa.Column("caller", sa.String(length=128), nullable=True),
    sa.Column("reason", sa.String(length=32), nullable=False),
    sa.Column("seconds", sa.Float(), nullable=False),
    sa.Column("transcript", sa.Text(), nullable=False),
    sa.Column("wav", sa.LargeBinary(), nullable=False),
    sa.Column("handoff", sa.JSON(), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_voicebot_voicemails_call_id", "call_id"),
)
sa.Table(
    "voicebot_call_turns", TABLES,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("call_id", sa.String(length=64), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("speaker", sa.String(length=8), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end", sa.DateTime(timezone=True), nullable=True),
    sa.Column("intents", sa.JSON(), nullable=False),
    sa.Column("latency_ms", sa.Float(), nullable=True),
    sa.Column("extra", sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(["call_id"], ["voicebot_calls.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_voicebot_call_turns_call_id", "call_id"),
)
sa.Table(
    "voicebot_sessions", TABLES,
    sa.Column("token_sha256", sa.String(length=64), nullable=False),
    sa.Column("username", sa.String(length=64), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(["username"], ["voicebot_users.username"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("token_sha256"),
    sa.Index("ix_voicebot_sessions_expires", "expires"),
    sa.Index("ix_voicebot_sessions_username", "username"),
)


# Dialogue acts that are not what a call is about (storage.calls.DIALOGUE_ACTS as of this revision).
_ACTS = frozenset({"greet", "goodbye", "affirm", "deny", "thanks", "repeat"})


def upgrade() -> None:
    if context.is_offline_mode():  # --sql: the script for an empty database
        for table in TABLES.sorted_tables:
            _create(table)
        return
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    added: list[str] = []
    for table in TABLES.sorted_tables:
        if table.name in existing:
            added += _adopt(bind, table)
        else:
            _create(table)
    if "voicebot_calls.intents" in added:
        _summarise_old_calls(bind)
    if existing & set(TABLES.tables):
        log.info("database made before migrations adopted: %d of %d tables kept%s", len(existing & set(TABLES.tables)),
                 len(TABLES.tables), f", columns added: {', '.join(added)}" if added else "")


def downgrade() -> None:
    for table in reversed(TABLES.sorted_tables):
        op.drop_table(table.name)


def _create(table: sa.Table) -> None:
    op.execute(CreateTable(table))
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        op.execute(CreateIndex(index))


def _adopt(bind: sa.Connection, table: sa.Table) -> list[str]:
    """Keep an existing table; add the nullable columns it lacks. Returns ``table.column`` added."""
    have = {c["name"] for c in sa.inspect(bind).get_columns(table.name)}
    missing = [c for c in table.columns if c.name not in have]
    required = [c.name for c in missing if not c.nullable]
    if required:
        raise SchemaError(
            f"table {table.name} lacks the column(s) {', '.join(required)} that voicebot needs: it was not made "
            "by voicebot. Use an empty database, or rename that table.")
    for column in missing:
        op.add_column(table.name, sa.Column(column.name, column.type, nullable=True))
    return [f"{table.name}.{c.name}" for c in missing]


def _summarise_old_calls(bind: sa.Connection) -> None:
    """Fill the search columns (intent names, highest frustration) of calls recorded before they existed."""
    calls, turns = TABLES.tables["voicebot_calls"], TABLES.tables["voicebot_call_turns"]
    found: dict[str, tuple[list[str], float | None]] = {}
    query = (sa.select(turns.c.call_id, turns.c.intents, turns.c.extra)
             .where(turns.c.speaker == "caller").order_by(turns.c.call_id, turns.c.seq, turns.c.id))
    for call_id, intents, extra in bind.execute(query):
        names, top = found.get(call_id, ([], None))
        for name in _intent_names(intents):
            if name not in names:
                names.append(name)
        signals = extra.get("signals") if isinstance(extra, dict) else None
        score = signals.get("frustration") if isinstance(signals, dict) else None
        if isinstance(score, (int, float)) and (top is None or score > top):
            top = round(float(score), 4)
        found[call_id] = (names, top)
    for call_id, (names, top) in found.items():
        values = {**({"intents": names} if names else {}), **({"frustration_max": top} if top is not None else {})}
        if values:
            bind.execute(sa.update(calls).where(calls.c.id == call_id, calls.c.intents.is_(None)).values(**values))
    if found:
        log.info("call records: search columns filled in for %d older call(s)", len(found))


def _intent_names(intents: Any) -> list[str]:
    if not isinstance(intents, list):
        return []
    return [i["name"] for i in intents
            if isinstance(i, dict) and isinstance(i.get("name"), str) and i["name"] not in _ACTS]
