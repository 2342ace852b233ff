"""The customer database: models, engine, demo data and the lookups the dialog manager makes."""

from dialogs.db.engine import Database, DatabaseError, ensure_database
from dialogs.db.repository import (
    Matter,
    close_contact,
    customer_summary,
    find_customer_by_phone,
    open_contact,
    open_matters,
    verify_identity,
)

__all__ = [
    "Database",
    "DatabaseError",
    "Matter",
    "close_contact",
    "customer_summary",
    "ensure_database",
    "find_customer_by_phone",
    "open_contact",
    "open_matters",
    "verify_identity",
]
