"""The audit trail: every change to the customer database writes one row in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dialogs.db.models import AuditLog
from dialogs.db.times import naive_utc


def record_change(
    session: Session,
    *,
    at: datetime,
    actor: str,
    entity: str,
    entity_id: int | None,
    action: str,
    customer_id: int | None = None,
    contact_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to ``session`` (committed or rolled back with the change it describes)."""
    row = AuditLog(
        at=naive_utc(at),
        actor=actor,
        contact_id=contact_id,
        customer_id=customer_id,
        entity=entity,
        entity_id=entity_id,
        action=action,
        before=before,
        after=after,
    )
    session.add(row)
    return row
