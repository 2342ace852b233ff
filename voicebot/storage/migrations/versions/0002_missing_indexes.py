"""Indexes the models declare but databases made before migrations may lack.

``create_all`` makes a table's indexes only with the table, and the old migrator added columns without theirs:
a database whose call records predate their search columns had no index on ``frustration_max``, ``agent_id``
nor ``customer_id``, so history search and erasure scanned every call. Each index of revision 1 is created
where it is missing (on a database that revision 1 created, nothing is).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (index, table, columns): every index of revision 1
INDEXES = [
    ("ix_audit_log_at", "audit_log", ["at"]),
    ("ix_audit_log_customer_id", "audit_log", ["customer_id"]),
    ("ix_callback_requests_call_id", "callback_requests", ["call_id"]),
    ("ix_callback_requests_queue", "callback_requests", ["queue"]),
    ("ix_callback_requests_status", "callback_requests", ["status"]),
    ("ix_customers_phone", "customers", ["phone"]),
    ("ix_voicebot_audit_at", "voicebot_audit", ["at"]),
    ("ix_voicebot_audit_call_id", "voicebot_audit", ["call_id"]),
    ("ix_voicebot_audit_username", "voicebot_audit", ["username"]),
    ("ix_voicebot_calls_agent_id", "voicebot_calls", ["agent_id"]),
    ("ix_voicebot_calls_customer_id", "voicebot_calls", ["customer_id"]),
    ("ix_voicebot_calls_frustration_max", "voicebot_calls", ["frustration_max"]),
    ("ix_voicebot_calls_start", "voicebot_calls", ["start"]),
    ("ix_voicebot_transfer_turns_call_id", "voicebot_transfer_turns", ["call_id"]),
    ("ix_voicebot_transfers_call_id", "voicebot_transfers", ["call_id"]),
    ("ix_voicebot_voicemails_call_id", "voicebot_voicemails", ["call_id"]),
    ("ix_contacts_caller_id", "contacts", ["caller_id"]),
    ("ix_contacts_customer_id", "contacts", ["customer_id"]),
    ("ix_contacts_started_at", "contacts", ["started_at"]),
    ("ix_orders_customer_id", "orders", ["customer_id"]),
    ("ix_subscriptions_customer_id", "subscriptions", ["customer_id"]),
    ("ix_verification_attempts_customer_id", "verification_attempts", ["customer_id"]),
    ("ix_voicebot_call_turns_call_id", "voicebot_call_turns", ["call_id"]),
    ("ix_voicebot_sessions_expires", "voicebot_sessions", ["expires"]),
    ("ix_voicebot_sessions_username", "voicebot_sessions", ["username"]),
    ("ix_invoices_customer_id", "invoices", ["customer_id"]),
    ("ix_order_items_order_id", "order_items", ["order_id"]),
    ("ix_returns_customer_id", "returns", ["customer_id"]),
    ("ix_returns_order_id", "returns", ["order_id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, if_not_exists=True)


def downgrade() -> None:
    """Nothing: revision 1 declares these indexes too, so a database at revision 1 may keep them."""
