"""SDP (RFC 4566) for one audio stream, and the offer/answer rules of RFC 3264 that a phone call needs."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Literal

from telephony.codecs import CODECS, Codec

TELEPHONE_EVENT = "telephone-event"
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# Static payload types usable without an rtpmap line (RFC 3551).
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}


_PROFILES = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")

# off: plain RTP only; offer: encrypt when the peer agrees, else plain; required: plain RTP is refused (488).
SrtpMode = Literal["off", "offer", "required"]
# The crypto suites of RFC 4568 we speak, in our order of preference; keys are 16 bytes of key + 14 of salt.
SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
SRTP_KEY_BYTES = 30


def new_srtp_key() -> bytes:
    """A fresh SRTP master key and salt for one call."""
    return secrets.token_bytes(SRTP_KEY_BYTES)


@dataclass(frozen=True)
class SrtpKeys:
    """What offer/answer agreed: the suite, our key (we encrypt with it) and the peer's (we decrypt with it)."""

    suite: str
    local: bytes = field(repr=False)
    remote: bytes = field(repr=False)


class SdpError(ValueError):
    """An SDP body we cannot use; the message says why (answer 488 or 400)."""


class SrtpMismatch(SdpError):
    """An offer or answer whose SRTP does not fit ours: plain RTP where SRTP is required, or the reverse."""


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto:<tag> <suite> inline:<key>`` attribute (RFC 4568 §9.1); the key stays out of reprs."""

    tag: int
    suite: str
    key: bytes = field(repr=False)

    @classmethod
    def parse(cls, value: str) -> Crypto | None:
        """The attribute value after ``crypto:``; None for a suite or key form we do not speak (RFC 4568
        says to ignore those), e.g. several keys, an MKI or a key lifetime other than the default."""
        parts = value.split()
        if len(parts) < 3 or not parts[0].isdigit() or parts[1] not in SRTP_SUITES or len(parts) > 3:
            return None
        method, _, params = parts[2].partition(":")
        if method != "inline" or ";" in params:
            return None
        key_text, *extras = params.split("|")
        if any(":" in e for e in extras):  # an MKI
            return None
        try:
            key = base64.b64decode(key_text, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(key) != SRTP_KEY_BYTES:
            return None
        return cls(int(parts[0]), parts[1], key)

    def to_attribute(self) -> str:
        return f"crypto:{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"


@dataclass
class AudioDescription:
    """What one side says about its audio: where to send RTP, which payload types, which direction."""

    address: str
    port: int
    payload_types: list[int]
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"
    ptime: int | None = None
    session_id: int = 0
    session_version: int = 0
    profile: str = "RTP/AVP"
    crypto: list[Crypto] = field(default_factory=list)

    @property
    def secure(self) -> bool:
        """The profile demands SRTP (RTP/SAVP or SAVPF): plain RTP is no answer to it."""
        return self.profile.startswith("RTP/SAVP")

    @classmethod
    def parse(cls, body: bytes | str) -> AudioDescription:
        """Read the first audio m-line of an SDP body. Raises :class:`SdpError`."""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        session_addr = None
        media_addr = None
        port = None
        pts: list[int] = []
        rtpmap: dict[int, tuple[str, int]] = {}
        fmtp: dict[int, str] = {}
        direction = "sendrecv"
        ptime = None
        in_audio = False
        seen_media = False
        sid = sver = 0
        profile = "RTP/AVP"
        crypto: list[Crypto] = []
        for raw in text.splitlines():
            line = raw.strip()
            if len(line) < 2 or line[1] != "=":
                continue
            kind, value = line[0], line[2:]
            if kind == "o":
                parts = value.split()
                if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
                    sid, sver = int(parts[1]), int(parts[2])
            elif kind == "m":
                if seen_media and in_audio:
                    break  # only the first audio stream matters
                parts = value.split()
                in_audio = len(parts) >= 4 and parts[0] == "audio" and port is None
                seen_media = True
                if in_audio:
                    if not parts[1].split("/")[0].isdigit():
                        raise SdpError("bad port in m=audio")
                    port = int(parts[1].split("/")[0])
                    if not 0 <= port < 65536:
                        raise SdpError("bad port in m=audio")
                    if parts[2] not in _PROFILES:
                        raise SdpError(f"unsupported media profile {parts[2]!r} (only RTP/AVP and RTP/SAVP)")
                    profile = parts[2]
                    pts = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
            elif kind == "c":
                parts = value.split()
                if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                    raise SdpError("bad c= line")
                addr = parts[2].split("/")[0]
                try:
                    ipaddress.ip_address(addr)
                except ValueError:
                    # A name would be resolved for every packet, and points media anywhere: IP addresses only.
                    raise SdpError(f"host names in c= are not supported ({addr[:60]!r}); use an IP address") \
                        from None
                if seen_media:
                    if in_audio:
                        media_addr = addr
                else:
                    session_addr = addr
            elif kind == "a" and (in_audio or not seen_media):
                name, _, arg = value.partition(":")
                if name in DIRECTIONS:
                    direction = name
                elif name == "ptime" and arg.strip().isdigit():
                    ptime = int(arg)
                elif in_audio and name == "rtpmap":
                    pt_text, _, enc = arg.partition(" ")
                    enc_parts = enc.split("/")
                    if pt_text.isdigit() and len(enc_parts) >= 2 and enc_parts[1].isdigit():
                        rtpmap[int(pt_text)] = (enc_parts[0], int(enc_parts[1]))
                elif in_audio and name == "crypto":
                    item = Crypto.parse(arg)
                    if item is not None:
                        crypto.append(item)
                elif in_audio and name == "fmtp":
                    pt_text, _, params = arg.partition(" ")
                    if pt_text.isdigit():
                        fmtp[int(pt_text)] = params.strip()
        if port is None:
            raise SdpError("no audio stream (m=audio) in SDP")
        address = media_addr or session_addr
        if address is None:
            raise SdpError("no connection address (c=) in SDP")
        if profile.startswith("RTP/SAVP") and not crypto:
            raise SdpError(f"{profile} without an a=crypto suite we speak ({', '.join(SRTP_SUITES)})")
        for pt in pts:
            if pt not in rtpmap and pt in _STATIC:
                rtpmap[pt] = _STATIC[pt]
        return cls(address, port, pts, rtpmap, fmtp, direction, ptime, sid, sver, profile, crypto)

    def codec_names(self) -> list[str]:
        return [self.rtpmap.get(pt, ("?", 0))[0] for pt in self.payload_types]

    def find(self, name: str, rate: int = 8000) -> int | None:
        """Payload type offered for ``name``/``rate`` (case-insensitive), or None."""
        for pt in self.payload_types:
            enc = self.rtpmap.get(pt)
            if enc and enc[0].lower() == name.lower() and enc[1] == rate:
                return pt
        return None

    @property
    def on_hold(self) -> bool:
        """True when the other side stopped sending to us (RFC 3264 §8.4; 0.0.0.0 is the RFC 2543 way)."""
        return self.direction in ("sendonly", "inactive") or self.address == "0.0.0.0"

    def to_bytes(self, username: str = "voicebot") -> bytes:
        ip = "IP6" if ":" in self.address else "IP4"
        lines = [
            "v=0",
            f"o={username} {self.session_id} {self.session_version} IN {ip} {self.address}",
            "s=voicebot",
            f"c=IN {ip} {self.address}",
            "t=0 0",
            f"m=audio {self.port} {self.profile} {' '.join(str(pt) for pt in self.payload_types)}",
        ]
        for pt in self.payload_types:
            if pt in self.rtpmap:
                name, rate = self.rtpmap[pt]
                lines.append(f"a=rtpmap:{pt} {name}/{rate}")
            if pt in self.fmtp:
                lines.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
        lines.extend(f"a={c.to_attribute()}" for c in self.crypto)
        lines.append(f"a=ptime:{self.ptime or 20}")
        lines.append(f"a={self.direction}")
        return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class Negotiated:
    """The outcome of offer/answer: the codec, the DTMF payload type and where to send RTP."""

    codec: Codec
    dtmf_pt: int | None
    remote_address: str
    remote_port: int
    remote_direction: str
    srtp: SrtpKeys | None = None  # None: plain RTP


_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


def new_session_id() -> int:
    return secrets.randbelow(2**31)


def make_offer(address: str, port: int, session_id: int, version: int, direction: str = "sendrecv",
               codecs: tuple[str, ...] = ("PCMU", "PCMA"), dtmf_pt: int = 101, srtp: SrtpMode = "off",
               srtp_key: bytes = b"") -> AudioDescription:
    """Our offer: the given G.711 codecs in preference order plus telephone-event. With ``srtp`` "offer" the
    suites we speak are offered under RTP/AVP (a peer without SRTP ignores them), with "required" under
    RTP/SAVP; ``srtp_key`` is our master key for them."""
    pts = [CODECS[c].payload_type for c in codecs] + [dtmf_pt]
    rtpmap = {CODECS[c].payload_type: (c, 8000) for c in codecs}
    rtpmap[dtmf_pt] = (TELEPHONE_EVENT, 8000)
    crypto = [Crypto(i, suite, srtp_key) for i, suite in enumerate(SRTP_SUITES, 1)] if srtp != "off" else []
    return AudioDescription(address, port, pts, rtpmap, {dtmf_pt: "0-16"}, direction, 20, session_id, version,
                            "RTP/SAVP" if srtp == "required" else "RTP/AVP", crypto)


def _answer_crypto(offer: AudioDescription, srtp: SrtpMode) -> Crypto | None:
    """The offered crypto attribute we take (None: plain RTP). Raises :class:`SdpError` when the offer and
    ``srtp`` do not fit together (the caller answers 488)."""
    chosen = next((c for c in offer.crypto), None) if srtp != "off" else None
    if offer.secure and srtp == "off":
        raise SrtpMismatch("SRTP (RTP/SAVP) offered, but SRTP is off here")
    if srtp == "required" and chosen is None:
        raise SrtpMismatch("SRTP is required here: the offer is plain RTP (no a=crypto)")
    return chosen


def answer(offer: AudioDescription, address: str, port: int, session_id: int, version: int,
           codecs: tuple[str, ...] = ("PCMU", "PCMA"), hold: bool = False, srtp: SrtpMode = "off",
           srtp_key: bytes = b"") -> tuple[AudioDescription, Negotiated]:
    """Answer ``offer`` (RFC 3264 §6): the first offered codec we support, telephone-event if offered, and
    SRTP with our ``srtp_key`` if the offer has a crypto suite we speak and ``srtp`` is not "off".

    Raises :class:`SdpError` if no offered codec is one of ``codecs``, or the offer's SRTP does not fit
    ``srtp`` (plain RTP when SRTP is required, RTP/SAVP when it is off); the caller answers 488.
    """
    crypto = _answer_crypto(offer, srtp)
    chosen: Codec | None = None
    for pt in offer.payload_types:
        enc = offer.rtpmap.get(pt)
        if enc and enc[0].upper() in codecs and enc[1] == 8000:
            chosen = Codec(enc[0].upper(), pt)
            break
    if chosen is None:
        raise SdpError(f"no common codec: offered {', '.join(offer.codec_names()) or 'none'}, "
                       f"we support {', '.join(codecs)}")
    dtmf_pt = offer.find(TELEPHONE_EVENT)
    pts = [chosen.payload_type] + ([dtmf_pt] if dtmf_pt is not None else [])
    rtpmap = {chosen.payload_type: (chosen.name, 8000)}
    fmtp = {}
    if dtmf_pt is not None:
        rtpmap[dtmf_pt] = (TELEPHONE_EVENT, 8000)
        fmtp[dtmf_pt] = offer.fmtp.get(dtmf_pt, "0-16")
    direction = _ANSWER_DIRECTION[offer.direction]
    if hold:
        direction = {"sendrecv": "sendonly", "recvonly": "inactive"}.get(direction, direction)
    ours = AudioDescription(address, port, pts, rtpmap, fmtp, direction, 20, session_id, version, offer.profile,
                            [Crypto(crypto.tag, crypto.suite, srtp_key)] if crypto else [])
    keys = SrtpKeys(crypto.suite, srtp_key, crypto.key) if crypto else None
    return ours, Negotiated(chosen, dtmf_pt, offer.address, offer.port, offer.direction, keys)


def accept_answer(offer: AudioDescription, reply: AudioDescription) -> Negotiated:
    """Read the answer to our ``offer``. Raises :class:`SdpError` if it picked nothing we offered, or answered
    an offer that requires SRTP without a crypto attribute we offered."""
    ours = {c.tag: c for c in offer.crypto}
    taken = next((c for c in reply.crypto if c.tag in ours and ours[c.tag].suite == c.suite), None)
    if offer.secure and taken is None:
        raise SrtpMismatch("answer to our SRTP offer has no crypto attribute we offered")
    keys = SrtpKeys(taken.suite, ours[taken.tag].key, taken.key) if taken else None
    for pt in reply.payload_types:
        enc = reply.rtpmap.get(pt)
        if enc and enc[0].upper() in CODECS and enc[1] == 8000:
            return Negotiated(Codec(enc[0].upper(), pt), reply.find(TELEPHONE_EVENT), reply.address,
                              reply.port, reply.direction, keys)
    raise SdpError(f"answer has no codec we offered: {', '.join(reply.codec_names()) or 'none'}")
