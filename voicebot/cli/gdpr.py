"""``voicebot gdpr export|delete|purge``: the right of access, the right to erasure, and retention."""

from __future__ import annotations

import json
import sys

import click

from voicebot.cli.common import config_option, settings_or_exit
from voicebot.cli.db import open_database


@click.group()
def gdpr() -> None:
    """Export or erase what is stored about a customer; purge old transcripts."""


@gdpr.command("export")
@click.option("--customer", "customer_id", type=int, required=True, help="Customer id.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the JSON to this file instead of standard output.")
@config_option
def export(customer_id: int, output: str | None, config_path: str | None) -> None:
    """Print everything stored about a customer as JSON (customer, orders, returns, invoices,
    subscriptions, contacts with transcripts, audit rows, call records with their turns and, for a recorded call,
    the recording's file path, size, length and consent; the audio stays in its file)."""
    from dialogs.privacy import UnknownCustomer, export_customer
    from voicebot.storage.retention import export_calls

    database = open_database(settings_or_exit(config_path))
    try:
        with database.session() as session:
            data = export_customer(session, customer_id)
        phone = (data.get("customer") or {}).get("phone")
        data["calls"] = export_calls(database.engine, customer_id, [phone] if phone else [])
    except UnknownCustomer as exc:
        click.echo(f"Cannot export: {exc}.", err=True)
        sys.exit(1)
    finally:
        database.dispose()
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        click.echo(f"Wrote the data of customer {customer_id} to {output}.", err=True)
    else:
        click.echo(text)


@gdpr.command("delete")
@click.option("--customer", "customer_id", type=int, required=True, help="Customer id.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@config_option
def delete(customer_id: int, yes: bool, config_path: str | None) -> None:
    """Erase a customer's personal data. Orders, invoices, returns and subscriptions are kept,
    anonymised, for accounting; contacts lose caller ID, summary, transcript and slot values; call records lose
    the caller's number, their turns, the bridged conversation, voice messages and recordings (rows and files);
    callback requests lose the
    number and hand-off packet. The freed space is overwritten and the write-ahead log emptied."""
    from dialogs.db.models import Customer
    from dialogs.db.times import utc_now
    from dialogs.privacy import UnknownCustomer, delete_customer
    from voicebot.storage.retention import checkpoint, erase_calls

    database = open_database(settings_or_exit(config_path))
    try:
        with database.session() as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                raise UnknownCustomer(customer_id)
            if not yes:
                click.confirm(f"Erase the personal data of customer {customer_id} ({customer.name})? "
                              "This cannot be undone.", abort=True)
            phone = customer.phone
            erasure = delete_customer(session, customer_id, utc_now(), actor="cli")
        calls = erase_calls(database.engine, customer_id, [phone] if phone else [])
        checkpoint(database.engine)
    except UnknownCustomer as exc:
        click.echo(f"Cannot delete: {exc}.", err=True)
        sys.exit(1)
    finally:
        database.dispose()
    click.echo(f"Erased customer {customer_id}: the customer record is deleted; "
               f"{erasure.contacts_erased} contact(s) lost caller ID, summary and transcript; "
               f"{erasure.audit_rows_redacted} audit row(s) redacted; {calls.calls} call record(s) erased; "
               f"{calls.voicemails} voice message(s) and {calls.recordings} recording file(s) deleted; "
               f"{calls.callbacks} callback request(s) lost number "
               f"and hand-off packet.")
    click.echo(f"Kept for accounting, anonymised (no link to the person): {erasure.orders_anonymised} order(s), "
               f"{erasure.invoices_anonymised} invoice(s), {erasure.returns_anonymised} return(s), "
               f"{erasure.subscriptions_anonymised} subscription(s).")


@gdpr.command("purge")
@config_option
def purge(config_path: str | None) -> None:
    """Erase caller IDs and transcripts of contacts and call records (with their recordings) older than
    memory.contact_retention_days, and recordings older than recording.retention_days."""
    from voicebot.storage.retention import purge_all

    settings = settings_or_exit(config_path)
    days = settings.memory.contact_retention_days
    database = open_database(settings)
    try:
        contacts, calls = purge_all(database, days, settings.recording.retention_days)
    finally:
        database.dispose()
    click.echo(f"Purged {contacts} contact(s) older than {days} days (caller ID, summary, transcript, hand-off) "
               f"and {calls} call record(s) (caller number, turns, bridged conversation, voice messages, recordings).")
