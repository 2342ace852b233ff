"""RTP packets as bytes: a PCMU packet and an RFC 4733 event captured from sipp's bundled pcap."""

from __future__ import annotations

import pytest

from telephony.rtp.packet import RtpError, RtpPacket, is_rtcp, seq_newer

# Header of an RFC 4733 packet in sipp's dtmf_2833_1.pcap: V=2, M=1, PT=101, event 1, volume 10, duration 160.
DTMF_PACKET = bytes.fromhex("80e5 0001 00000fa0 12345678 010a00a0".replace(" ", ""))


def test_parse_dtmf_packet() -> None:
    p = RtpPacket.parse(DTMF_PACKET)
    assert (p.payload_type, p.marker, p.sequence, p.timestamp, p.ssrc) == (101, True, 1, 4000, 0x12345678)
    assert p.payload == bytes.fromhex("010a00a0")
    assert p.to_bytes() == DTMF_PACKET


def test_csrc_extension_and_padding() -> None:
    # CC=1, X=1, P=1: one CSRC, a one-word extension, 3 bytes of payload and 2 bytes of padding.
    data = bytes.fromhex("b1000007000000640000beef" "00000001" "bede0001" "11223344" "aabbcc" "0002")
    p = RtpPacket.parse(data)
    assert p.csrc == [1] and p.payload == b"\xaa\xbb\xcc" and p.payload_type == 0


@pytest.mark.parametrize("data", [b"", b"\x80" * 11, bytes.fromhex("40000001000000000000000000"),
                                  bytes.fromhex("8f00000100000000000000"),
                                  bytes.fromhex("a00000010000000000000000ff")])
def test_bad_packets(data: bytes) -> None:
    with pytest.raises(RtpError):
        RtpPacket.parse(data)


def test_rtcp_and_sequence_wrap() -> None:
    assert is_rtcp(bytes.fromhex("80c8000600000001")) and not is_rtcp(DTMF_PACKET)
    assert seq_newer(0, 65535) and seq_newer(5, 3) and not seq_newer(3, 5) and not seq_newer(7, 7)
