"""`voicebot gdpr delete` leaves nothing of the person anywhere in the database: every kind of record that can
hold a customer's data is seeded for Jane Doe (customer, orders, a return, contacts whose intents hold a new
address, audit rows, a call with turns, trace and hand-off packet, a callback request, a voice message, a
transfer with its turns), the CLI erases her as an operator would, and the bytes of the SQLite file and its
write-ahead log are scanned for her name, number, e-mail and addresses."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from demo_db import NOW, demo_copy
from sqlalchemy import func, select

from dialogs.actions import ACTIONS, ActionContext
from dialogs.db.engine import Database
from dialogs.db.models import Contact, Order, Return
from dialogs.db.repository import close_contact, open_contact, verify_identity
from telephony.queue.live import TransferResult
from telephony.queue.store import CallbackStore
from voicebot.storage import CallStore
from voicebot.storage.schema import upgrade
from voicebot.transfer import TransferStore

JANE = 1
NAME = "Jane Doe"
PHONE = "+15551230001"
EMAIL = "jane.doe@example.com"
OLD_ADDRESS = "185 Berry Street"
NEW_ADDRESS = "9 Quiet Lane"
PERSONAL = [NAME, "Jane", PHONE, PHONE[2:], EMAIL, OLD_ADDRESS, NEW_ADDRESS, "Quiet Lane", "Berry Street"]
PACKET = {"summary": f"{NAME} ({PHONE}) wants to change her address to {NEW_ADDRESS}",
          "customer": {"id": JANE, "name": NAME, "verified": True},
          "transcript": [{"speaker": "caller", "text": f"I moved to {NEW_ADDRESS}, my e-mail is {EMAIL}"}]}


def seed(url: str, recording: Path | None = None) -> None:
    upgrade(url)  # the product's tables, as `voicebot serve` makes them
    database = Database(url)
    when = NOW - timedelta(days=1)
    with database.session() as s:
        cid = open_contact(s, "sip", PHONE, when, customer_id=JANE)
        verify_identity(s, JANE, "pin", "4321", now=when, contact_id=cid)
        ACTIONS["change_address"](ActionContext(s, {"address": f"{NEW_ADDRESS}, Oakland, 94601"}, JANE, cid, when))
        close_contact(s, cid, when, "handoff", f"{NAME} changed her address", [
            {"intent": "change_address", "status": "done", "outcome": "changed",
             "slots": {"address": f"{NEW_ADDRESS}, Oakland, 94601"}}],
            [{"speaker": "caller", "text": f"I live at {NEW_ADDRESS} now"}], PACKET, 0.4)
        # A chat from her number the bot never linked to her.
        other = open_contact(s, "webrtc", PHONE, when)
        close_contact(s, other, when, "resolved", None, [{"intent": "order_status", "slots": {"email": EMAIL}}],
                      None, None, None)
        order = s.scalar(select(Order).where(Order.number == "45281"))
        assert order is not None
        s.add(Return(order_id=order.id, customer_id=JANE, reason=f"pick it up at {OLD_ADDRESS}", status="requested",
                     rma="RMA-GDPR-1", created_at=when))
    calls = CallStore(database.engine)
    start = datetime.now(UTC) - timedelta(hours=1)
    calls.open_call("call-jane", "sip", PHONE, "+18005550100")
    calls.add_turn("call-jane", "caller", f"This is {NAME}, I moved to {NEW_ADDRESS}", start,
                   intents=[{"name": "change_address", "slots": {"address": NEW_ADDRESS}}],
                   extra={"trace": {"steps": [f"account found by phone {PHONE}"], "packet": PACKET}})
    calls.add_turn("call-jane", "bot", f"Thank you, Jane, your e-mail {EMAIL} is on file.", start)
    calls.set_customer("call-jane", JANE)
    if recording is not None:  # her voice, recorded with the call (voicebot.recording)
        recording.write_bytes(b"RIFF" + bytes(40) + f"{NAME} speaking".encode())
        calls.open_recording("call-jane", str(recording))
        calls.close_recording("call-jane", recording.stat().st_size, 1.0)
    calls.close_call("call-jane", "handoff", "caller_hangup")
    calls.open_call("call-jane-2", "webrtc", PHONE)  # from her number, never identified
    calls.add_turn("call-jane-2", "caller", f"my address is {OLD_ADDRESS}", start)
    calls.close_call("call-jane-2", "resolved", "caller_hangup")
    callbacks = CallbackStore(database.engine)
    callback_id = callbacks.add(call_id="call-jane", caller=PHONE, queue="general", reason="callback", handoff=PACKET)
    transfers = TransferStore(database.engine)
    transfers.add(TransferResult("call-jane", "callback", "general", callback_id=callback_id),
                  [("caller", f"please call me back, I am {NAME}", start, start + timedelta(seconds=2))],
                  correct_call=False)
    transfers.add_voicemail(call_id="call-jane-3", queue="general", caller=PHONE, reason="no_agents",
                            audio=np.zeros(16000, np.int16).tobytes(),
                            transcript=f"Hi, {NAME} here, {EMAIL}, at {NEW_ADDRESS}", handoff=PACKET)
    calls.close()
    database.dispose()


def test_gdpr_delete_leaves_no_trace_of_the_person(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    url = demo_copy(tmp_path, tmp_path_factory)
    db_file = Path(url.removeprefix("sqlite:///"))
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"database:\n  url: {json.dumps(url)}\n")
    recording = tmp_path / "call-jane.wav"
    seed(url, recording)
    assert recording.exists() and str(recording).encode() in db_file.read_bytes() + (
        Path(f"{db_file}-wal").read_bytes() if Path(f"{db_file}-wal").exists() else b"")
    before = db_file.read_bytes() + (Path(f"{db_file}-wal").read_bytes() if Path(f"{db_file}-wal").exists() else b"")
    assert all(p.encode() in before for p in (NAME, PHONE, EMAIL, NEW_ADDRESS))  # the seed reached the file

    # Another connection stays open, as `voicebot serve` would: the write-ahead log outlives the command.
    server = sqlite3.connect(db_file)
    try:
        assert server.execute("SELECT count(*) FROM customers").fetchone()[0] > 0
        done = subprocess.run([sys.executable, "-m", "voicebot", "gdpr", "delete", "--customer", str(JANE),
                               "--yes", "--config", str(config)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        for path in (db_file, Path(f"{db_file}-wal")):
            data = path.read_bytes() if path.exists() else b""
            left = [p for p in PERSONAL if p.encode() in data or p.encode("utf-16-le") in data]
            assert not left, f"{path.name} still holds {left}"
    finally:
        server.close()
    assert "callback request" in done.stdout  # the operator is told what was erased
    assert not recording.exists() and "1 recording file(s) deleted" in done.stdout  # her recorded voice too

    # What stays for statistics and accounting is still there, without the person.
    database = Database(url)
    with database.session() as s:
        contact = s.scalar(select(Contact).where(Contact.outcome == "handoff", Contact.started_at >= NOW - timedelta(days=2)))
        assert contact is not None and contact.intents == [
            {"intent": "change_address", "status": "done", "outcome": "changed"}]
        assert s.scalar(select(func.count()).select_from(Return).where(Return.rma == "RMA-GDPR-1")) == 1
    calls = CallStore(database.engine)
    record = calls.get("call-jane")
    assert record is not None and record["outcome"] == "handoff" and record["turns"] == []
    request = CallbackStore(database.engine).requests(status=None)[0]
    assert request.caller is None and request.status == "cancelled"
    assert TransferStore(database.engine).voicemails(status=None) == []
    calls.close()
    database.dispose()
