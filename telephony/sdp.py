"""SDP (RFC 4566) for one audio stream, and the offer/answer rules of RFC 3264 that a phone call needs."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from telephony.codecs import CODECS, Codec

TELEPHONE_EVENT = "telephone-event"
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# Static payload types usable without an rtpmap line (RFC 3551).
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000), 9: ("G722", 8000)}


class SdpError(ValueError):
    """An SDP body we cannot use; the message says why (answer 488 or 400)."""


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
                    if parts[2] not in ("RTP/AVP", "RTP/AVPF"):
                        raise SdpError(f"unsupported media profile {parts[2]!r} (only plain RTP/AVP)")
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
                elif in_audio and name == "fmtp":
                    pt_text, _, params = arg.partition(" ")
                    if pt_text.isdigit():
                        fmtp[int(pt_text)] = params.strip()
        if port is None:
            raise SdpError("no audio stream (m=audio) in SDP")
        address = media_addr or session_addr
        if address is None:
            raise SdpError("no connection address (c=) in SDP")
        for pt in pts:
            if pt not in rtpmap and pt in _STATIC:
                rtpmap[pt] = _STATIC[pt]
        return cls(address, port, pts, rtpmap, fmtp, direction, ptime, sid, sver)

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
            f"m=audio {self.port} RTP/AVP {' '.join(str(pt) for pt in self.payload_types)}",
        ]
        for pt in self.payload_types:
            if pt in self.rtpmap:
                name, rate = self.rtpmap[pt]
                lines.append(f"a=rtpmap:{pt} {name}/{rate}")
            if pt in self.fmtp:
                lines.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
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


_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


def new_session_id() -> int:
    return secrets.randbelow(2**31)


def make_offer(address: str, port: int, session_id: int, version: int, direction: str = "sendrecv",
               codecs: tuple[str, ...] = ("PCMU", "PCMA"), dtmf_pt: int = 101) -> AudioDescription:
    """Our offer: the given G.711 codecs in preference order plus telephone-event."""
    pts = [CODECS[c].payload_type for c in codecs] + [dtmf_pt]
    rtpmap = {CODECS[c].payload_type: (c, 8000) for c in codecs}
    rtpmap[dtmf_pt] = (TELEPHONE_EVENT, 8000)
    return AudioDescription(address, port, pts, rtpmap, {dtmf_pt: "0-16"}, direction, 20, session_id, version)


def answer(offer: AudioDescription, address: str, port: int, session_id: int, version: int,
           codecs: tuple[str, ...] = ("PCMU", "PCMA"), hold: bool = False) -> tuple[AudioDescription, Negotiated]:
    """Answer ``offer`` (RFC 3264 §6): the first offered codec we support, telephone-event if offered.

    Raises :class:`SdpError` if no offered codec is one of ``codecs`` (the caller answers 488).
    """
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
    ours = AudioDescription(address, port, pts, rtpmap, fmtp, direction, 20, session_id, version)
    return ours, Negotiated(chosen, dtmf_pt, offer.address, offer.port, offer.direction)


def accept_answer(offer: AudioDescription, reply: AudioDescription) -> Negotiated:
    """Read the answer to our ``offer``. Raises :class:`SdpError` if it picked nothing we offered."""
    for pt in reply.payload_types:
        enc = reply.rtpmap.get(pt)
        if enc and enc[0].upper() in CODECS and enc[1] == 8000:
            return Negotiated(Codec(enc[0].upper(), pt), reply.find(TELEPHONE_EVENT), reply.address,
                              reply.port, reply.direction)
    raise SdpError(f"answer has no codec we offered: {', '.join(reply.codec_names()) or 'none'}")
