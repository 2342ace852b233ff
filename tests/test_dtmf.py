"""RFC 4733 telephone-events: payload bytes, one key per event despite repeats, the packets we send."""

from __future__ import annotations

import pytest

from telephony.dtmf import DtmfReceiver, TelephoneEvent, event_packets


def test_payload_bytes() -> None:
    ev = TelephoneEvent.parse(bytes.fromhex("0b8a0320"))  # '#', end, volume 10, 800 samples
    assert (ev.key, ev.end, ev.volume, ev.duration) == ("#", True, 10, 800)
    assert ev.to_bytes() == bytes.fromhex("0b8a0320")
    assert TelephoneEvent.parse(bytes.fromhex("10000000")).key is None  # flash
    with pytest.raises(ValueError):
        TelephoneEvent.parse(b"\x01")


def test_receiver_reports_each_press_once() -> None:
    rx = DtmfReceiver()
    keys = []
    # "12": each event repeated with growing duration and a triple end packet, sharing one timestamp.
    for ts, key in ((1000, 1), (5000, 2)):
        for ev in event_packets(str(key)):
            k = rx.receive(ts, ev.to_bytes())
            if k:
                keys.append(k)
    assert keys == ["1", "2"]
    # The same key pressed twice is two events (two timestamps).
    assert rx.receive(9000, bytes.fromhex("02000050")) == "2"


def test_sender_packets() -> None:
    packets = event_packets("5", duration_ms=100)
    assert [p.end for p in packets] == [False] * 4 + [True] * 3
    assert [p.duration for p in packets] == [160, 320, 480, 640, 800, 800, 800]
    assert {p.event for p in packets} == {5}
    with pytest.raises(ValueError):
        event_packets("x")
