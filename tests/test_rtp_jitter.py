"""Jitter buffer: reordering, loss, late packets, sequence wrap, resync after a jump."""

from __future__ import annotations

from telephony.rtp.jitter import JitterBuffer
from telephony.rtp.packet import RtpPacket


def pkt(seq: int) -> RtpPacket:
    return RtpPacket(0, seq & 0xFFFF, seq * 160, 1, bytes([seq & 0xFF]) * 160)


def drain(jb: JitterBuffer, n: int) -> list[int | None]:
    out = []
    for _ in range(n):
        p = jb.pop()
        out.append(p.sequence if p else None)
    return out


def test_prefetch_then_in_order_despite_reordering() -> None:
    jb = JitterBuffer(prefetch=3)
    jb.put(pkt(11))
    assert jb.pop() is None  # still filling
    jb.put(pkt(10))
    jb.put(pkt(13))
    jb.put(pkt(12))
    assert drain(jb, 4) == [10, 11, 12, 13]


def test_loss_gives_a_gap_and_late_packet_is_dropped() -> None:
    jb = JitterBuffer(prefetch=2)
    for s in (1, 2, 4, 5):
        jb.put(pkt(s))
    assert drain(jb, 3) == [1, 2, None]
    jb.put(pkt(3))  # arrives after its slot was played
    assert jb.late == 1 and jb.lost == 1
    assert drain(jb, 2) == [4, 5]


def test_sequence_wraps() -> None:
    jb = JitterBuffer(prefetch=2)
    for s in (65534, 65535, 65536, 65537):
        jb.put(pkt(s))
    assert drain(jb, 4) == [65534, 65535, 0, 1]


def test_runs_dry_then_refills_and_resyncs_after_jump() -> None:
    jb = JitterBuffer(prefetch=2, capacity=50)
    jb.put(pkt(1))
    jb.put(pkt(2))
    assert drain(jb, 3) == [1, 2, None]
    jb.put(pkt(1000))  # new stream far ahead
    jb.put(pkt(1001))
    assert drain(jb, 2) == [1000, 1001]
