"""SDP parsing and offer/answer with real offers from softphones and trunks."""

from __future__ import annotations

import pytest

from telephony.sdp import AudioDescription, SdpError, accept_answer, answer, make_offer

# As sent by a Linphone/baresip-style softphone (several codecs, telephone-event at two rates).
SOFTPHONE_OFFER = (
    b"v=0\r\no=- 3874532 3874533 IN IP4 192.168.1.50\r\ns=-\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\n"
    b"m=audio 7078 RTP/AVP 96 9 0 8 101 97\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:101 telephone-event/48000\r\n"
    b"a=rtpmap:97 telephone-event/8000\r\na=fmtp:97 0-15\r\na=sendrecv\r\n"
    b"m=video 9078 RTP/AVP 102\r\na=rtpmap:102 VP8/90000\r\n"
)
# Asterisk on hold: sendonly with media-level connection address.
HOLD_OFFER = (
    b"v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=Asterisk\r\nt=0 0\r\nm=audio 14000 RTP/AVP 8 0 101\r\n"
    b"c=IN IP4 10.0.0.1\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"
)


def test_parse_softphone_offer() -> None:
    d = AudioDescription.parse(SOFTPHONE_OFFER)
    assert (d.address, d.port, d.payload_types) == ("192.168.1.50", 7078, [96, 9, 0, 8, 101, 97])
    assert d.rtpmap[0] == ("PCMU", 8000)  # static payload type without rtpmap
    assert d.find("telephone-event") == 97  # the 8 kHz one, not the 48 kHz one
    assert (d.session_id, d.session_version) == (3874532, 3874533)


def test_answer_picks_first_common_codec_and_8k_telephone_event() -> None:
    offer = AudioDescription.parse(SOFTPHONE_OFFER)
    ours, n = answer(offer, "192.0.2.1", 20000, 7, 0)
    assert n.codec.name == "PCMU" and n.codec.payload_type == 0 and n.dtmf_pt == 97
    assert (n.remote_address, n.remote_port) == ("192.168.1.50", 7078)
    text = ours.to_bytes().decode()
    assert "m=audio 20000 RTP/AVP 0 97\r\n" in text and "a=rtpmap:97 telephone-event/8000" in text
    assert "a=sendrecv" in text and "c=IN IP4 192.0.2.1" in text
    # Preference order is the offerer's: with PCMA listed first, PCMA is used.
    assert answer(AudioDescription.parse(HOLD_OFFER), "192.0.2.1", 20000, 7, 0)[1].codec.name == "PCMA"


def test_hold_offer_is_answered_recvonly() -> None:
    offer = AudioDescription.parse(HOLD_OFFER)
    assert offer.on_hold and offer.address == "10.0.0.1"
    ours, n = answer(offer, "192.0.2.1", 20000, 7, 1)
    assert ours.direction == "recvonly" and n.remote_direction == "sendonly"
    inactive = HOLD_OFFER.replace(b"a=sendonly", b"a=inactive")
    assert answer(AudioDescription.parse(inactive), "192.0.2.1", 20000, 7, 1)[0].direction == "inactive"
    old_style = HOLD_OFFER.replace(b"c=IN IP4 10.0.0.1", b"c=IN IP4 0.0.0.0").replace(b"a=sendonly", b"")
    assert AudioDescription.parse(old_style).on_hold


def test_no_common_codec() -> None:
    only_opus = SOFTPHONE_OFFER.replace(b"RTP/AVP 96 9 0 8 101 97", b"RTP/AVP 96 101")
    with pytest.raises(SdpError, match="no common codec"):
        answer(AudioDescription.parse(only_opus), "192.0.2.1", 20000, 7, 0)


@pytest.mark.parametrize("body", [b"", b"v=0\r\n", b"garbage", b"v=0\r\nm=audio x RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n",
                                  b"v=0\r\nm=audio 5000 RTP/SAVP 0\r\nc=IN IP4 1.2.3.4\r\n",
                                  b"v=0\r\nm=audio 5000 RTP/AVP 0\r\n",
                                  # Finding 7: a host name would be resolved per packet by the sending thread.
                                  b"v=0\r\nm=audio 5000 RTP/AVP 0\r\nc=IN IP4 victim.example\r\n",
                                  b"v=0\r\nc=IN IP6 localhost\r\nm=audio 5000 RTP/AVP 0\r\n"])
def test_unusable_sdp(body: bytes) -> None:
    with pytest.raises(SdpError):
        AudioDescription.parse(body)


def test_offer_and_answer_round_trip() -> None:
    offer = make_offer("192.0.2.1", 20002, 5, 0)
    parsed = AudioDescription.parse(offer.to_bytes())
    assert parsed.codec_names() == ["PCMU", "PCMA", "telephone-event"]
    reply, _ = answer(parsed, "192.0.2.9", 30000, 9, 0, codecs=("PCMA",))
    n = accept_answer(offer, AudioDescription.parse(reply.to_bytes()))
    assert n.codec.name == "PCMA" and n.dtmf_pt == 101 and n.remote_port == 30000


# An SRTP offer as baresip sends it with `mediaenc=srtp-mand` (RFC 4568 SDES, two suites).
SRTP_KEY_B64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"
SRTP_OFFER = (
    b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 10000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + SRTP_KEY_B64.encode() + b"\r\n"
    b"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + SRTP_KEY_B64.encode() + b"|2^31\r\n"
    b"a=crypto:3 AES_256_CM_HMAC_SHA1_80 inline:" + SRTP_KEY_B64.encode() + b"\r\na=sendrecv\r\n"
)
OUR_KEY = bytes(range(30))


def test_srtp_offer_is_answered_with_our_key_in_the_first_suite_we_speak() -> None:
    offer = AudioDescription.parse(SRTP_OFFER)
    assert offer.secure and [c.tag for c in offer.crypto] == [1, 2]  # the 256-bit suite is not ours
    assert SRTP_KEY_B64 not in repr(offer)  # keys never reach a repr (and so no log line)
    ours, n = answer(offer, "192.0.2.1", 20000, 7, 0, srtp="offer", srtp_key=OUR_KEY)
    assert n.srtp is not None and n.srtp.suite == "AES_CM_128_HMAC_SHA1_32"
    assert n.srtp.local == OUR_KEY and n.srtp.remote == b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"
    text = ours.to_bytes().decode()
    assert "m=audio 20000 RTP/SAVP 0 101\r\n" in text
    assert text.count("a=crypto:") == 1 and "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:AAECAwQF" in text
    # The offerer reads our answer back to the same keys, seen from its side.
    back = accept_answer(offer, AudioDescription.parse(ours.to_bytes()))
    assert back.srtp is not None and back.srtp.remote == OUR_KEY


def test_srtp_modes() -> None:
    plain = AudioDescription.parse(HOLD_OFFER)
    secure = AudioDescription.parse(SRTP_OFFER)
    with pytest.raises(SdpError, match="SRTP is required"):
        answer(plain, "192.0.2.1", 20000, 7, 0, srtp="required", srtp_key=OUR_KEY)
    with pytest.raises(SdpError, match="SRTP is off"):
        answer(secure, "192.0.2.1", 20000, 7, 0)
    assert answer(plain, "192.0.2.1", 20000, 7, 0, srtp="offer", srtp_key=OUR_KEY)[1].srtp is None
    # Our offers: "offer" puts the suites under RTP/AVP (a peer without SRTP answers plain), "required" RTP/SAVP.
    best_effort = make_offer("192.0.2.1", 20000, 7, 0, srtp="offer", srtp_key=OUR_KEY)
    assert b"RTP/AVP 0 8 101" in best_effort.to_bytes() and len(best_effort.crypto) == 2
    assert accept_answer(best_effort, plain).srtp is None
    required = make_offer("192.0.2.1", 20000, 7, 0, srtp="required", srtp_key=OUR_KEY)
    assert b"RTP/SAVP 0 8 101" in required.to_bytes()
    with pytest.raises(SdpError, match="no crypto"):
        accept_answer(required, plain)
