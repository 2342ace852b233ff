"""The retail demo's actions: orders, returns, address, password, billing and subscriptions.

Every action reads ``ctx.slots`` and ``ctx.customer_id`` (the *verified* customer) and returns an
:class:`ActionResult` whose ``data`` values are ready to speak (``*_spoken`` keys read codes digit by
digit: "4 5 2 8 1"; every result about an order carries ``order_id`` and ``order_id_spoken``).
None raises on bad input: an unknown order number is ``not_found`` (with ``invalid_slot`` so the
manager re-asks), an unverified caller or someone else's order is ``not_allowed``. Changes are
flushed to ``ctx.session`` together with their audit row; the caller commits both or neither.

Outcomes per action:

=========================  ==================================================================================
action                     outcomes (data keys of ``ok``)
=========================  ==================================================================================
lookup_order               ok (order_id, status, status_text, status_phrase, carrier, tracking, tracking_last4, eta, items),
                           not_found (invalid_slot order_id; order_id_spoken), not_allowed (order_id_spoken)
start_return               ok (order_id, rma, rma_spoken, email_masked), not_found, not_allowed,
                           not_eligible (why), already_done (rma, rma_spoken, status, return_status)
check_address              ok (need_city, need_postcode, address once complete), invalid, not_allowed; changes
                           nothing
change_address             ok (address, postcode), invalid (invalid_slot address or postcode), not_allowed
reset_password             ok (email_masked), not_found (no email on file; why), not_allowed
billing_summary            ok (last_amount, last_date, balance_due, status, duplicate, duplicate_text: a
                           sentence, or "" when there is no double charge),
                           not_found (no invoices), not_allowed
refund_duplicate_charge    ok (amount = refund_amount, date, description), not_found (no double charge),
                           not_allowed
cancel_subscription        ok (plan, end_date), not_found (no subscription), already_done (plan, end_date),
                           not_allowed
=========================  ==================================================================================
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import wraps
from typing import Any

from sqlalchemy import select

from dialogs.actions.base import ActionContext, ActionFn, ActionResult, action
from dialogs.db.audit import record_change
from dialogs.db.models import Customer, Invoice, Order, Return, Subscription
from dialogs.db.repository import new_rma, normalize_postcode
from dialogs.db.spoken import day_name, mask_email, money, month_name, on_day, spell
from dialogs.db.times import naive_utc
from dialogs.nlu.entities import Address, parse_address, parse_place, state_name

RETURN_WINDOW_DAYS = 30

# "12 Main Street", "12B Elm St.", "100-102 Park Avenue", "PO Box 77": a house number and a street word.
_STREET_LINE = re.compile(
    r"^\s*(\d+[A-Za-z]?(-\d+)?\s+[A-Za-z][\w.'-]*(\s+[\w.'-]+)*|p\.?\s*o\.?\s*box\s+\d+)\s*$", re.I
)
_POSTCODE = re.compile(r"^(\d{5}(\d{4})?|[A-Z0-9]{3,10})$")


def _now(ctx: ActionContext) -> datetime:
    return naive_utc(ctx.now)


def _verified_customer(ctx: ActionContext) -> Customer | None:
    return None if ctx.customer_id is None else ctx.session.get(Customer, ctx.customer_id)


def _audit(ctx: ActionContext, entity: str, entity_id: int | None, what: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    record_change(ctx.session, at=ctx.now, actor=ctx.actor, contact_id=ctx.contact_id,
                  customer_id=ctx.customer_id, entity=entity, entity_id=entity_id, action=what,
                  before=before, after=after)
    ctx.session.flush()


def _order_number(value: Any) -> str:
    # "45281", 45281 and "4 5 2 8 1" are the same order; anything else stays as typed for the reply.
    return re.sub(r"\D", "", str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _find_order(ctx: ActionContext) -> Order | ActionResult:
    """The caller's order named by slot order_id, or the result to return instead."""
    number = _order_number(ctx.slots.get("order_id"))
    spoken = " ".join(number) if number else ""
    customer = _verified_customer(ctx)
    if customer is None:
        return ActionResult("not_allowed", {"order_id": number, "order_id_spoken": spoken})
    order = ctx.session.scalar(select(Order).where(Order.number == number)) if len(number) == 5 else None
    if order is None:
        return ActionResult("not_found", {"order_id": number, "order_id_spoken": spoken}, invalid_slot="order_id")
    if order.customer_id != customer.id:
        # Said like not_allowed, never "that is Mr X's order": an order number must not reveal its owner.
        return ActionResult("not_allowed", {"order_id": number, "order_id_spoken": spoken})
    return order


def _of_an_order(fn: Callable[[ActionContext, Order, datetime], ActionResult]) -> ActionFn:
    """The action ``fn(ctx, order, now)`` about the caller's order named by slot order_id; when there is no
    such order of theirs, the refusal of :func:`_find_order` (not_allowed, not_found) instead."""

    @wraps(fn)
    def run(ctx: ActionContext) -> ActionResult:
        order = _find_order(ctx)
        return order if isinstance(order, ActionResult) else fn(ctx, order, _now(ctx))

    return run


def _of_the_customer(fn: Callable[[ActionContext, Customer], ActionResult]) -> ActionFn:
    """The action ``fn(ctx, customer)`` about the verified customer's account; ``not_allowed`` for a caller
    not verified."""

    @wraps(fn)
    def run(ctx: ActionContext) -> ActionResult:
        customer = _verified_customer(ctx)
        return ActionResult("not_allowed") if customer is None else fn(ctx, customer)

    return run


def _about(order: Order) -> dict[str, str]:
    return {"order_id": order.number, "order_id_spoken": spell(order.number)}


def _items_text(order: Order) -> str:
    parts = [f"{i.quantity} {i.name}" if i.quantity > 1 else f"a {i.name}" for i in order.items]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _status_text(order: Order, now: datetime) -> str:
    if order.status == "processing":
        return f"being prepared for shipping, placed {on_day(order.placed_at, now)}"
    if order.status == "shipped":
        text = f"shipped with {order.carrier or 'our carrier'}"
        if order.shipped_at:
            text += f" {on_day(order.shipped_at, now)}"
        if order.tracking_number:
            text += f", tracking ends in {spell(order.tracking_number[-4:])}"
        if order.eta:
            text += f", expected {day_name(order.eta, now)}"
        return text
    if order.status == "delivered":
        return f"delivered {on_day(order.delivered_at, now)}" if order.delivered_at else "delivered"
    if order.status == "returned":
        return "returned and refunded"
    return order.status


@action("lookup_order", data=(
    "order_id", "status", "status_text", "status_phrase", "carrier", "tracking", "tracking_last4", "eta", "items",
))
@_of_an_order
def lookup_order(ctx: ActionContext, order: Order, now: datetime) -> ActionResult:
    """Where an order is: status, carrier, tracking and expected delivery, ready to speak."""
    return ActionResult("ok", {
        **_about(order),
        "status": order.status,
        "status_text": _status_text(order, now),
        # the status with its verb, for a sentence ("was shipped with UPS on Monday", "is being prepared ...")
        "status_phrase": f"{'is' if order.status == 'processing' else 'was'} {_status_text(order, now)}",
        "carrier": order.carrier,
        "tracking": order.tracking_number,
        "tracking_last4": spell(order.tracking_number[-4:]) if order.tracking_number else None,
        "eta": day_name(order.eta, now) if order.eta else None,
        "items": _items_text(order),
    })


@action("start_return", data=("order_id", "rma", "status", "return_status", "started", "why", "email_masked"))
@_of_an_order
def start_return(ctx: ActionContext, order: Order, now: datetime) -> ActionResult:
    """Open a return for a delivered order within the return window and email the label."""
    existing = ctx.session.scalar(
        select(Return).where(Return.order_id == order.id).order_by(Return.id.desc())
    )
    if existing is not None:
        return ActionResult("already_done", {
            **_about(order), "rma": existing.rma, "rma_spoken": spell(existing.rma), "status": existing.status,
            "return_status": existing.status.replace("_", " "), "started": on_day(existing.created_at, now),
        })
    if order.status == "returned":
        return ActionResult("already_done", {**_about(order), "status": "refunded", "return_status": "refunded"})
    why = None
    if order.status == "cancelled":
        why = "the order was cancelled, so there is nothing to send back"
    elif order.status != "delivered" or order.delivered_at is None:
        why = "it has not been delivered yet"
    elif order.delivered_at < now - timedelta(days=RETURN_WINDOW_DAYS):
        why = (f"it was delivered {on_day(order.delivered_at, now)}, "
               f"more than {RETURN_WINDOW_DAYS} days ago")
    if why is not None:
        return ActionResult("not_eligible", {**_about(order), "why": why})

    customer = order.customer
    reason = str(ctx.slots.get("return_reason") or "").strip()[:500] or None
    ret = Return(order_id=order.id, customer_id=order.customer_id, reason=reason,
                 status="label_sent" if customer and customer.email else "requested",
                 rma=new_rma(order.number, now), created_at=now)
    ctx.session.add(ret)
    ctx.session.flush()
    _audit(ctx, "return", ret.id, "create",
           after={"order": order.number, "rma": ret.rma, "reason": reason, "status": ret.status})
    return ActionResult("ok", {
        **_about(order), "rma": ret.rma, "rma_spoken": spell(ret.rma),
        "email_masked": mask_email(customer.email) if customer and customer.email else None,
    }, changed=True)


def _address_slots(slots: dict[str, Any]) -> Address | None:
    """The address the caller gave: slot ``address`` (an :class:`Address`, or text such as "12 Main Street,
    Springfield, IL 62701") with what the slots ``city`` (an :class:`Address` without a line, or text) and
    ``postcode`` add; None if there is no usable street line."""
    value = slots.get("address")
    if isinstance(value, str):
        value = parse_address(value)
    if not isinstance(value, Address) or not value.line or len(value.line) > 200 or not _STREET_LINE.match(value.line):
        return None
    place = slots.get("city")
    if isinstance(place, str):
        place = parse_place(place) or Address("", " ".join(place.split()).title() or None)
    if isinstance(place, Address) and place.city:
        value = replace(value, city=place.city, state=place.state or value.state,
                        postcode=place.postcode or value.postcode)
    code = slots.get("postcode")
    if code is not None and str(code).strip():
        value = replace(value, postcode=str(code).strip())
    return value


def _new_address(ctx: ActionContext, customer: Customer) -> dict[str, Any] | ActionResult:
    """The customer's address columns after the change, or the result to return instead. Without a city
    the old city (and state) stay; without a postcode the old postcode stays unless the city changes."""
    given = _address_slots(ctx.slots)
    if given is None:
        return ActionResult("invalid", {"why": "I could not make out a street and house number"},
                            invalid_slot="address")
    postcode = customer.postcode
    if given.postcode:
        code = normalize_postcode(given.postcode)
        if not _POSTCODE.match(code) or not any(ch.isdigit() for ch in code):
            return ActionResult("invalid", {"why": "that postcode does not look right"}, invalid_slot="postcode")
        postcode = code if not (len(code) == 9 and code.isdigit()) else f"{code[:5]}-{code[5:]}"
    elif given.city and customer.city and given.city.casefold() != customer.city.casefold():
        # A move to another city keeps no old postcode: ask for the new one rather than store a wrong one.
        return ActionResult("invalid", {"why": "I need the postcode of the new address"}, invalid_slot="postcode")
    same_city = not given.city or (customer.city or "").casefold() == given.city.casefold()
    state = given.state or (customer.state if same_city else None)
    return {"address_line": given.line, "city": given.city or customer.city, "state": state,
            "postcode": postcode}


def _spoken_address(columns: dict[str, Any]) -> str:
    """The address as it will be stored, read aloud: "21 Oak Street, Chicago, Illinois, 6 0 6 1 4"."""
    parts = (columns["address_line"], columns["city"], state_name(columns["state"]), spell(columns["postcode"] or ""))
    return ", ".join(p for p in parts if p)


@action("check_address", data=("need_city", "need_postcode", "address", "why"))
@_of_the_customer
def check_address(ctx: ActionContext, customer: Customer) -> ActionResult:
    """Check the new address before it is confirmed, changing nothing: ``ok`` (address: what
    change_address will store, read aloud; need_city / need_postcode: the part still to ask for),
    ``invalid`` (invalid_slot address or postcode), ``not_allowed``."""
    given = _address_slots(ctx.slots)
    if given is not None and not given.city:
        return ActionResult("ok", {"need_city": True, "need_postcode": False})
    if given is not None and not given.postcode:
        return ActionResult("ok", {"need_city": False, "need_postcode": True})
    after = _new_address(ctx, customer)
    if isinstance(after, ActionResult):
        return after
    return ActionResult("ok", {"need_city": False, "need_postcode": False, "address": _spoken_address(after)})


@action("change_address", data=("address", "postcode", "unchanged", "why"))
@_of_the_customer
def change_address(ctx: ActionContext, customer: Customer) -> ActionResult:
    """Replace the customer's postal address with exactly what :func:`check_address` read back. Without a
    city the old city stays; without a postcode the old postcode stays unless the city changes (then
    ``invalid`` asks for the postcode). The postcode is also what identity verification checks from now on."""
    after = _new_address(ctx, customer)
    if isinstance(after, ActionResult):
        return after
    before = {"address_line": customer.address_line, "city": customer.city, "state": customer.state,
              "postcode": customer.postcode}
    spoken = _spoken_address(after)
    if before == after:
        return ActionResult("ok", {"address": spoken, "postcode": after["postcode"], "unchanged": True})
    customer.address_line, customer.city = after["address_line"], after["city"]
    customer.state, customer.postcode = after["state"], after["postcode"]
    _audit(ctx, "customer", customer.id, "change_address", before=before, after=after)
    return ActionResult("ok", {"address": spoken, "postcode": after["postcode"]}, changed=True)


@action("reset_password", data=("email_masked", "why"))
@_of_the_customer
def reset_password(ctx: ActionContext, customer: Customer) -> ActionResult:
    """Send a password-reset link to the email on file (recorded in the audit log)."""
    if not customer.email:
        return ActionResult("not_found", {"why": "there is no email address on your account"})
    masked = mask_email(customer.email)
    _audit(ctx, "customer", customer.id, "password_reset", after={"reset_link_sent_to": masked})
    return ActionResult("ok", {"email_masked": masked}, changed=True)


def _duplicate_charge(invoices: list[Invoice]) -> tuple[Invoice, Invoice] | None:
    """The most recent pair of paid, identical charges (same amount and item) in one calendar month."""
    groups: dict[tuple[Any, ...], list[Invoice]] = defaultdict(list)
    for inv in invoices:
        if inv.status == "paid":
            key = (inv.issued_at.year, inv.issued_at.month, inv.amount, inv.subscription_id, inv.description)
            groups[key].append(inv)
    pairs = [sorted(g, key=lambda i: i.issued_at)[:2] for g in groups.values() if len(g) >= 2]
    if not pairs:
        return None
    first, second = max(pairs, key=lambda p: p[1].issued_at)
    return first, second


def _calendar_day(when: datetime) -> str:
    # Billing dates read as dates ("on November 1"), never "on yesterday".
    return f"{when:%B} {when.day}"


def _invoices(ctx: ActionContext, customer: Customer) -> list[Invoice]:
    return list(ctx.session.scalars(
        select(Invoice).where(Invoice.customer_id == customer.id).order_by(Invoice.issued_at, Invoice.id)
    ))


def _charge_label(inv: Invoice, ctx: ActionContext) -> str:
    if inv.subscription_id is not None:
        sub = ctx.session.get(Subscription, inv.subscription_id)
        if sub is not None:
            return f"your {sub.plan} subscription"
    return inv.description


@action("billing_summary", data=(
    "last_amount", "last_date", "last_description", "balance_due", "balance_due_value", "status", "overdue",
    "duplicate", "duplicate_text", "why",
))
@_of_the_customer
def billing_summary(ctx: ActionContext, customer: Customer) -> ActionResult:
    """The last charge, the balance due, and whether the same thing was charged twice in one month."""
    invoices = _invoices(ctx, customer)
    charges = [i for i in invoices if i.status in ("paid", "due", "overdue")]
    if not charges:
        return ActionResult("not_found", {"why": "there are no charges on your account"})
    last = charges[-1]
    due = sum((i.amount for i in invoices if i.status in ("due", "overdue")), Decimal("0.00"))
    dup = _duplicate_charge(invoices)
    data: dict[str, Any] = {
        "last_amount": money(last.amount),
        "last_date": _calendar_day(last.issued_at),
        "last_description": last.description,
        "balance_due": money(due),
        "balance_due_value": str(due),
        "status": last.status,
        "overdue": any(i.status == "overdue" for i in invoices),
        "duplicate": dup is not None,
        "duplicate_text": "",
    }
    if dup is not None:
        first, _second = dup
        data["duplicate_text"] = (f"You were charged {money(first.amount)} twice in {month_name(first.issued_at)} "
                                  f"for {_charge_label(first, ctx)}.")
    return ActionResult("ok", data)


@action("refund_duplicate_charge", data=("amount", "refund_amount", "date", "description", "why"))
@_of_the_customer
def refund_duplicate_charge(ctx: ActionContext, customer: Customer) -> ActionResult:
    """Refund the second of two identical charges in one month."""
    dup = _duplicate_charge(_invoices(ctx, customer))
    if dup is None:
        return ActionResult("not_found", {"why": "I cannot see a double charge on your account"})
    _first, second = dup
    second.status = "refunded"
    _audit(ctx, "invoice", second.id, "refund", before={"status": "paid"},
           after={"status": "refunded", "amount": str(second.amount)})
    amount = money(second.amount)
    return ActionResult("ok", {"amount": amount, "refund_amount": amount, "date": _calendar_day(second.issued_at),
                               "description": _charge_label(second, ctx)}, changed=True)


@action("cancel_subscription", data=("plan", "end_date", "ended", "why"))
@_of_the_customer
def cancel_subscription(ctx: ActionContext, customer: Customer) -> ActionResult:
    """Cancel the active subscription (slot ``plan`` picks one if there are several); it runs until the
    end of the paid period."""
    now = _now(ctx)
    subs = list(ctx.session.scalars(
        select(Subscription)
        .where(Subscription.customer_id == customer.id)
        .order_by(Subscription.started_at.desc())
    ))
    wanted = str(ctx.slots.get("plan") or "").strip().lower()
    if wanted:
        subs = [s for s in subs if wanted in s.plan.lower()] or subs
    active = [s for s in subs if s.status == "active"]
    if not active:
        if subs:
            last = subs[0]
            end = last.renews_at or last.cancelled_at or now
            return ActionResult("already_done", {"plan": last.plan, "end_date": day_name(end, now),
                                                 "ended": end <= now})
        return ActionResult("not_found", {"why": "there is no subscription on your account"})
    sub = active[0]
    sub.status, sub.cancelled_at = "cancelled", now
    end = sub.renews_at or now
    _audit(ctx, "subscription", sub.id, "cancel", before={"status": "active"},
           after={"status": "cancelled", "cancelled_at": now.isoformat(), "ends": end.isoformat()})
    return ActionResult("ok", {"plan": sub.plan, "end_date": day_name(end, now)}, changed=True)
