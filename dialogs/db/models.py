"""The customer database: typed SQLAlchemy 2 declarative models.

All timestamps are naive UTC (SQLite has no time zones; callers pass aware or naive UTC datetimes and
the repository converts). Money is ``Decimal`` in ``Numeric(10, 2)`` columns. Foreign keys from
business records (orders, invoices, ...) to ``customers`` are nullable so that erasing a customer
(GDPR) can keep those records, anonymised, for accounting.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ORDER_STATUSES = ("processing", "shipped", "delivered", "cancelled", "returned")
RETURN_STATUSES = ("requested", "label_sent", "received", "refunded")
INVOICE_STATUSES = ("paid", "due", "overdue", "refunded")
SUBSCRIPTION_STATUSES = ("active", "cancelled")

Money = Numeric(10, 2, asdecimal=True)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON(none_as_null=True), list[Any]: JSON(none_as_null=True)}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)  # E.164, e.g. +15551230001
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    postcode: Mapped[str | None] = mapped_column(String(16))
    address_line: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2))  # a US state's two-letter code, e.g. "IL"
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    pin_hash: Mapped[str | None] = mapped_column(String(200))  # see dialogs.db.security, never the PIN
    created_at: Mapped[datetime] = mapped_column(DateTime)

    orders: Mapped[list[Order]] = relationship(back_populates="customer", order_by="Order.placed_at")
    subscriptions: Mapped[list[Subscription]] = relationship(back_populates="customer")
    invoices: Mapped[list[Invoice]] = relationship(back_populates="customer", order_by="Invoice.issued_at")

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(5), unique=True)  # the public order number, 5 digits
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    placed_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(16))  # one of ORDER_STATUSES
    carrier: Mapped[str | None] = mapped_column(String(40))
    tracking_number: Mapped[str | None] = mapped_column(String(40))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    eta: Mapped[date | None] = mapped_column(Date)
    total: Mapped[Decimal] = mapped_column(Money)

    customer: Mapped[Customer | None] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )
    returns: Mapped[list[Return]] = relationship(back_populates="order")


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money)

    order: Mapped[Order] = relationship(back_populates="items")


class Return(Base):
    __tablename__ = "returns"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # one of RETURN_STATUSES
    rma: Mapped[str] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    order: Mapped[Order] = relationship(back_populates="returns")


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    plan: Mapped[str] = mapped_column(String(60))
    monthly_price: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16))  # one of SUBSCRIPTION_STATUSES
    started_at: Mapped[datetime] = mapped_column(DateTime)
    renews_at: Mapped[datetime | None] = mapped_column(DateTime)  # after cancelling: the end of service
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)

    customer: Mapped[Customer | None] = relationship(back_populates="subscriptions")


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    issued_at: Mapped[datetime] = mapped_column(DateTime)
    amount: Mapped[Decimal] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String(16))  # one of INVOICE_STATUSES
    description: Mapped[str] = mapped_column(String(200))

    customer: Mapped[Customer | None] = relationship(back_populates="invoices")


class Contact(Base):
    """One call or chat. Personal content (caller id, summary, transcript, hand-off) is erasable."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # "sip", "webrtc", "chat"
    caller_id: Mapped[str | None] = mapped_column(String(40), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str | None] = mapped_column(String(40))
    summary: Mapped[str | None] = mapped_column(Text)
    intents: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    transcript: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    handoff: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    frustration_max: Mapped[float | None] = mapped_column(Float)


class VerificationAttempt(Base):
    """One identity check (postcode, date of birth or PIN) of a caller claiming to be this customer.

    Kept so that guessing a 4-digit PIN cannot go on across calls: see ``verify_identity(now=...)``."""

    __tablename__ = "verification_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime)
    method: Mapped[str] = mapped_column(String(20))
    success: Mapped[bool] = mapped_column(Boolean)


class AuditLog(Base):
    """One row per change. ``customer_id`` is a plain number (no foreign key) so the trail outlives erasure."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(60))
    contact_id: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(Integer, index=True)
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
