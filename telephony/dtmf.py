"""DTMF as RTP telephone-events (RFC 4733 §2.3): event payloads, a receiver that turns a stream of event
packets into key presses once each, and a sender that turns a key into the packets to send."""

from __future__ import annotations

import struct
from dataclasses import dataclass

EVENTS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")


@dataclass(frozen=True)
class TelephoneEvent:
    """One RFC 4733 event payload: key, end bit, volume (dBm0 below 0) and duration in timestamp units."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Raises ValueError if the payload is shorter than 4 bytes."""
        if len(payload) < 4:
            raise ValueError("telephone-event payload shorter than 4 bytes")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration & 0xFFFF)

    @property
    def key(self) -> str | None:
        """The keypad character, or None for events outside 0-9 * # A-D (flash and tones)."""
        return EVENTS[self.event] if self.event < len(EVENTS) else None


class DtmfReceiver:
    """Reports each key press exactly once, although RFC 4733 senders repeat every packet and send the end
    packet three times. An event is identified by its RTP timestamp (the start of the tone)."""

    def __init__(self) -> None:
        self._last_ts: int | None = None

    def receive(self, timestamp: int, payload: bytes) -> str | None:
        """The key, the first time a packet of a new event arrives; None for repeats and unknown events."""
        try:
            ev = TelephoneEvent.parse(payload)
        except ValueError:
            return None
        if timestamp == self._last_ts:
            return None
        self._last_ts = timestamp
        return ev.key


def event_packets(key: str, duration_ms: int = 160, volume: int = 10, rate: int = 8000,
                  interval_ms: int = 20) -> list[TelephoneEvent]:
    """The payloads for one key press: one every ``interval_ms`` with growing duration, then the end packet
    three times (RFC 4733 §2.5.1.4). All share one RTP timestamp; the first carries the marker bit."""
    if len(key) != 1 or key.upper() not in EVENTS:
        raise ValueError(f"not a DTMF key: {key!r}")
    code = EVENTS.index(key.upper())
    step = rate * interval_ms // 1000
    total = rate * duration_ms // 1000
    out = [TelephoneEvent(code, False, volume, d) for d in range(step, total, step)]
    out += [TelephoneEvent(code, True, volume, total)] * 3
    return out
