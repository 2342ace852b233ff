"""RTP packets (RFC 3550 §5.1): parse and serialise the fixed header, CSRCs, extension and padding."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

_HEADER = struct.Struct("!BBHII")


class RtpError(ValueError):
    """Bytes that are not an RTP packet."""


@dataclass
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: list[int] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Raises :class:`RtpError` for anything that is not RTP version 2 or is truncated."""
        if len(data) < 12:
            raise RtpError("shorter than an RTP header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != 2:
            raise RtpError("not RTP version 2")
        pos = 12 + 4 * (b0 & 0x0F)
        if len(data) < pos:
            raise RtpError("truncated CSRC list")
        csrc = list(struct.unpack_from(f"!{b0 & 0x0F}I", data, 12))
        if b0 & 0x10:
            if len(data) < pos + 4:
                raise RtpError("truncated header extension")
            (words,) = struct.unpack_from("!H", data, pos + 2)
            pos += 4 + 4 * words
        end = len(data)
        if b0 & 0x20:
            pad = data[-1]
            if pad == 0 or pad > end - pos:
                raise RtpError("bad padding")
            end -= pad
        if pos > end:
            raise RtpError("truncated packet")
        return cls(b1 & 0x7F, seq, ts, ssrc, data[pos:end], bool(b1 & 0x80), csrc)

    def to_bytes(self) -> bytes:
        b0 = 0x80 | len(self.csrc)
        b1 = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        head = _HEADER.pack(b0, b1, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc)
        return head + b"".join(struct.pack("!I", c) for c in self.csrc) + self.payload


def is_rtcp(data: bytes) -> bool:
    """RTCP multiplexed on the RTP port (RFC 5761 §4): payload type byte 192..223."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number ``a`` comes after ``b`` (modular comparison)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000
