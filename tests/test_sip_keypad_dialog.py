"""Keypad input over SIP reaches the dialog: a caller dials `voicebot serve` with our own user agent, presses
keys as RFC 4733 events, and the bot acts on them (the PIN verifies the caller; 0 asks for a person)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS_YAML
from leak_helpers import assert_no_leak
from net_helpers import free_port, rtp_ports, sip_port

from telephony.config import SipConfig
from telephony.sip.ua import UserAgent

pytestmark = pytest.mark.slow




async def until(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > end:
            return False
        await asyncio.sleep(0.02)
    return True


def get(url: str, auth: dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=10) as resp:
        return json.load(resp)


def dump(path: Path) -> set[str]:
    """Every row of every table of the SQLite file, as SQL lines."""
    with sqlite3.connect(path) as conn:
        return set(conn.iterdump())


def test_keys_pressed_on_a_sip_call_drive_the_dialog(tmp_path: Path) -> None:
    port = sip_port()
    http = free_port(socket.SOCK_STREAM)
    rtp = rtp_ports(200)
    (tmp_path / "voicebot.yaml").write_text(
        f"database:\n  url: sqlite:///{tmp_path}/voicebot.db\n  seed_demo: true\n"
        + CALL_FLOW_MODELS_YAML
        + f"server:\n  host: 127.0.0.1\n  port: {http}\n"
        f"sip:\n  listen_udp: 127.0.0.1:{port}\n  listen_tcp: 127.0.0.1:{port}\n"
        f"  rtp_port_min: {rtp['rtp_port_min']}\n  rtp_port_max: {rtp['rtp_port_max']}\n"
        "log_level: DEBUG\n"  # even the debug log never names the keys
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "voicebot", "serve", "--config", str(tmp_path / "voicebot.yaml")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    log: list[str] = []
    reader: threading.Thread | None = None
    try:
        assert server.stdout is not None
        for line in server.stdout:
            log.append(line)
            if "SIP ready" in line or server.poll() is not None:
                break
        assert any("SIP ready" in line for line in log), "".join(log)
        reader = threading.Thread(target=lambda: log.extend(server.stdout), daemon=True)  # type: ignore[arg-type]
        reader.start()
        add_user(f"sqlite:///{tmp_path}/voicebot.db", "sup", "supervisor")
        before = dump(tmp_path / "voicebot.db")  # the demo data holds numbers of its own
        auth: dict[str, str] = {}  # the records need a login; made once HTTP is up

        def bot_turn_count() -> int:
            try:
                if not auth:
                    auth.update(login(f"http://127.0.0.1:{http}", "sup"))
                calls = get(f"http://127.0.0.1:{http}/api/calls", auth)
            except urllib.error.URLError:  # HTTP may come up a moment after SIP
                return 0
            calls = calls["calls"] if isinstance(calls, dict) else calls
            if not calls:
                return 0
            record = get(f"http://127.0.0.1:{http}/api/calls/{urllib.parse.quote(calls[0]['id'], safe='')}", auth)
            return sum(1 for t in record["turns"] if t["speaker"] == "bot")

        async def bot_turns_reach(n: int) -> bool:
            end = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < end:
                if await asyncio.to_thread(bot_turn_count) >= n:
                    return True
                await asyncio.sleep(0.1)
            return False

        async def call() -> str:
            ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None,
                                     **rtp_ports(100)))
            await ua.start()
            try:
                # Jane Doe's number: the bot recognises her and asks about her shipped order.
                leg = await ua.dial(f"sip:bot@127.0.0.1:{port}", caller="+15551230001", ring_timeout=20)
                # Each step waits until the bot's answer is in the call record (an event, not a sleep).
                assert await bot_turns_reach(1), "no greeting"
                # "I see you've contacted us recently. Is that what you're calling about?" — keys answer it: 1 is yes.
                leg.send_dtmf("1")
                assert await bot_turns_reach(2), "no answer to key 1"
                # Verification: the PIN typed on the keypad, ended with #.
                leg.send_dtmf("4321#")
                assert await bot_turns_reach(3), "no answer to the PIN"
                # 0 asks for a person. No agent is configured: the bot says so and offers a callback; 1 (yes)
                # accepts it, 1 again confirms the number she calls from; then the bot says goodbye and hangs up.
                leg.send_dtmf("0")
                assert await bot_turns_reach(4), "no answer to key 0"
                leg.send_dtmf("1")
                assert await bot_turns_reach(5), "no answer to the callback offer"
                leg.send_dtmf("1")
                # the bot speaks its queued replies (keys run ahead of speech) and says goodbye before it hangs up
                return await asyncio.wait_for(leg.wait_ended(), 120)
            finally:
                await ua.stop()

        asyncio.run(call())
        calls = get(f"http://127.0.0.1:{http}/api/calls", auth)
        calls = calls["calls"] if isinstance(calls, dict) else calls
        assert len(calls) == 1
        url = f"http://127.0.0.1:{http}/api/calls/{urllib.parse.quote(calls[0]['id'], safe='')}"
        record = get(url, auth)
        # The server closes the record after its pipeline has wound down, a moment after the BYE.
        deadline = time.monotonic() + 30
        while record["end"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
            record = get(url, auth)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        server.wait()
        if reader is not None:
            reader.join(timeout=10)
    assert record["channel"] == "sip"
    assert record["dialled"] == "bot"  # the user part of the request URI the caller dialled
    assert record["outcome"] == "callback_requested"  # nobody could take her: not counted as handed off
    caller_turns = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert len(caller_turns) == 5
    assert all("keypad" in t["text"] for t in caller_turns)
    assert_no_leak(json.dumps(record), "4321")  # the PIN is not stored
    assert "[keypad: ****]" in [t["text"] for t in caller_turns]
    added = "\n".join(sorted(dump(tmp_path / "voicebot.db") - before))
    assert "call" in added
    assert_no_leak(added, "4321", "4, 3, 2, 1")  # no row the call wrote (timestamps hold any four digits)
    server_log = "".join(log)
    assert "SIP ready" in server_log
    assert_no_leak(server_log, "4321")  # as a number of its own: the log's random ids and ports hold any digits
    for leaked in ("DTMF 4", "4 / 3", "'4', '3'"):
        assert leaked not in server_log, leaked
    bot_text = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "bot").lower()
    assert "verified" in bot_text and "4 5 2 8 1" in bot_text  # the PIN verified her, then her order status
    assert "none of my colleagues is available" in bot_text and "connecting you" not in bot_text
    assert "call you back on 5 5 5 1 2 3 0 0 0 1" in bot_text
    with sqlite3.connect(tmp_path / "voicebot.db") as db:
        rows = db.execute("SELECT caller, reason, json_extract(handoff, '$.reason'), json_extract(handoff, "
                          "'$.customer.name') FROM callback_requests").fetchall()
    assert rows == [("+15551230001", "no_agent", "caller_request", "Jane Doe")]  # the packet is kept
