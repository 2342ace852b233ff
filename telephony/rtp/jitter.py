"""A fixed-delay RTP jitter buffer: packets in any order, one payload out per 20 ms tick in sequence order."""

from __future__ import annotations

from telephony.rtp.packet import RtpPacket, seq_newer


class JitterBuffer:
    """Reorders packets by sequence number and releases them at a steady rate.

    ``prefetch`` packets are collected before the first one is released (the delay that absorbs jitter).
    :meth:`pop` is called once per packet interval and returns the next payload, or None when that packet is
    missing (lost or late); a packet older than the play position is dropped. If the sender jumps far ahead
    (new stream, long silence suppression) the buffer resynchronises instead of playing gaps.
    """

    def __init__(self, prefetch: int = 3, capacity: int = 50):
        self.prefetch = prefetch
        self.capacity = capacity
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None
        self._started = False
        self.late = 0
        self.lost = 0
        self.received = 0

    def __len__(self) -> int:
        return len(self._packets)

    def put(self, packet: RtpPacket) -> None:
        self.received += 1
        if self._next is not None and self._started and not (
            packet.sequence == self._next or seq_newer(packet.sequence, self._next)
        ):
            self.late += 1
            return
        if self._next is not None and ((packet.sequence - self._next) & 0xFFFF) >= self.capacity \
                and seq_newer(packet.sequence, self._next):
            self._resync()
        self._packets[packet.sequence] = packet
        if self._next is None or (not self._started and seq_newer(self._next, packet.sequence)):
            self._next = packet.sequence

    def _resync(self) -> None:
        self._packets.clear()
        self._next = None
        self._started = False

    def pop(self) -> RtpPacket | None:
        """The packet due now; None while prefetching, when it is missing, or when the buffer ran dry."""
        if self._next is None:
            return None
        if not self._started:
            if len(self._packets) < self.prefetch:
                return None
            self._started = True
        if not self._packets:
            # Ran dry: the sender paused; refill to the prefetch depth before playing again.
            self._started = False
            return None
        packet = self._packets.pop(self._next, None)
        if packet is None:
            self.lost += 1
        self._next = (self._next + 1) & 0xFFFF
        return packet
