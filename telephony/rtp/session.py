"""One RTP audio stream: a UDP socket, a jitter buffer for what arrives, steady 20 ms pacing for what we send.

Audio crosses this boundary as 16 kHz 16-bit mono PCM; G.711 coding and the 8 kHz <-> 16 kHz conversion
happen inside. Every 20 ms the application gets the next frame in (silence where packets are missing) from
a task on the asyncio loop, and the peer gets the next packet out (silence when we have nothing to say, which
keeps NAT bindings open and phones' jitter buffers happy) from the pacer thread, so stalls of the loop do not
become gaps in what the caller hears.

Media is accepted from one source only (see ``LatchMode``): the session latches onto the first packet from an
allowed address, answers to where it really came from (symmetric RTP, the port may differ from the SDP's behind
NATs and SBCs) and never switches to another source on a stray packet, so a packet sprayed at the port range
cannot take the call's audio over (the Asterisk "RTP bleed" class). Only a new SDP (re-INVITE) moves the latch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from audio.pcm import BYTES_PER_MS, FRAME_BYTES, FRAME_S, SAMPLE_RATE
from telephony.codecs import PCMU, Codec, StreamResampler
from telephony.dtmf import DtmfReceiver, TelephoneEvent, event_packets
from telephony.rtp.jitter import JitterBuffer
from telephony.rtp.pacer import PACER
from telephony.rtp.packet import RtpError, RtpPacket, is_rtcp
from telephony.rtp.srtp import SrtpContext
from telephony.sdp import SrtpKeys

log = logging.getLogger(__name__)

SAMPLES_8K = 160  # one 20 ms G.711 packet
STRAY_LOG_INTERVAL_S = 10.0

# Whose packets the session latches onto: "sdp" the address the peer's SDP names (any port on it);
# "signalling" the address its SIP messages come from (callers behind NAT whose SDP names a private address);
# "first" whoever sends first (no protection against injected media; only for peers that fit neither rule).
LatchMode = Literal["sdp", "signalling", "first"]
LATCH_MODES: tuple[LatchMode, ...] = ("sdp", "signalling", "first")


@dataclass
class RtpStats:
    sent: int = 0
    received: int = 0
    max_send_gap_ms: float = 0.0
    max_receive_gap_ms: float = 0.0
    dtmf_received: int = 0
    stray: int = 0  # packets from a source the session did not latch onto (or may not latch onto), dropped
    srtp_failed: int = 0  # packets that failed SRTP authentication (forged, replayed or plain RTP), dropped


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession):
        self.session = session

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.session._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


class RtpSession:
    """Send and receive one G.711 audio stream with RFC 4733 DTMF.

    ``on_audio(pcm16k)`` receives 20 ms of 16 kHz PCM per tick once the stream started; ``on_dtmf(key)``
    receives each key press once. ``latching`` says whose packets are accepted (see ``LatchMode``);
    ``signalling_host`` is the address the call's SIP messages come from, needed by ``"signalling"``.
    ``on_no_media()`` is called once if, after :meth:`start`, no packet from the peer arrives for
    ``no_media_timeout_s`` (0: never) while :attr:`expect_media` is true (false while the call is on hold).
    """

    def __init__(self, on_audio: Callable[[bytes], None] | None = None,
                 on_dtmf: Callable[[str], None] | None = None, jitter_prefetch: int = 3,
                 max_output_ms: int = 80, latching: LatchMode = "sdp", signalling_host: str | None = None,
                 no_media_timeout_s: float = 0.0):
        if latching not in LATCH_MODES:
            raise ValueError(f"RTP latching must be one of {', '.join(LATCH_MODES)}, not {latching!r}")
        if latching == "signalling" and not signalling_host:
            raise ValueError("RTP latching 'signalling' needs the signalling source address")
        self.on_audio = on_audio
        self.on_dtmf = on_dtmf
        self.on_no_media: Callable[[], None] | None = None
        self.no_media_timeout_s = no_media_timeout_s
        self.codec: Codec = PCMU
        self.dtmf_pt: int | None = None
        self.remote: tuple[str, int] | None = None  # where packets go: the SDP's address, then the latched source
        self.latching: LatchMode = latching
        self._signalling_ip = _ip(signalling_host) if signalling_host else None
        self._sdp_remote: tuple[str, int] | None = None
        self.local_port: int = 0
        self.sending = True
        self.stats = RtpStats()
        self._jitter = JitterBuffer(prefetch=jitter_prefetch)
        self._dtmf_in = DtmfReceiver()
        self._up = StreamResampler(8000, SAMPLE_RATE)
        self._down = StreamResampler(SAMPLE_RATE, 8000)
        self._out = bytearray()
        self._max_out = max_output_ms * BYTES_PER_MS
        self._room = asyncio.Event()
        self._room.set()
        self._lock = threading.Lock()  # the pacer thread takes from _out and the DTMF queue
        self._waiting = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._dtmf_queue: list[tuple[str, int]] = []
        self._dtmf_out: list[TelephoneEvent] = []
        self._dtmf_ts = 0
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None
        self._latched = False
        self._stray_logged_at: float | None = None
        self._stray_unlogged = 0
        self._last_rx: float | None = None
        self._last_tx: float | None = None
        self._expect_media = True
        self._media_since = 0.0  # when the no-media clock last started: start(), a new peer, the end of a hold
        self._no_media_reported = False
        self._srtp: SrtpContext | None = None

    @property
    def srtp(self) -> bool:
        """True when the stream is encrypted (SRTP negotiated)."""
        return self._srtp is not None

    async def open(self, host: str, port_min: int, port_max: int) -> int:
        """Bind the first free even port in [port_min, port_max]; returns it. Raises OSError if none is free."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        start = port_min + (port_min % 2)
        ports = list(range(start, port_max + 1, 2))
        # Start at a random point so concurrent calls do not all race for the same first port.
        offset = random.randrange(len(ports)) if ports else 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for port in ports[offset:] + ports[:offset]:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                continue
            sock.setblocking(False)
            # The loop only receives on this socket; the pacer thread sends on it directly.
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
            self._transport = transport  # type: ignore[assignment]
            self._sock = sock
            self.local_port = port
            return port
        raise OSError(f"no free RTP port in {port_min}-{port_max}")

    def configure(self, codec: Codec, dtmf_pt: int | None, remote: tuple[str, int],
                  srtp: SrtpKeys | None = None) -> None:
        """Set what offer/answer decided; may be called again on re-INVITE. A new remote address (the peer
        moved, signalled in its SDP) releases the latch; the same one keeps it. ``srtp``: the keys to encrypt
        and authenticate with (None: plain RTP); the same keys keep the running SRTP state."""
        self.codec = codec
        self.dtmf_pt = dtmf_pt
        if srtp != (self._srtp.keys if self._srtp else None):
            with self._lock:  # the pacer thread protects with it
                self._srtp = SrtpContext(srtp) if srtp is not None else None
        if remote != self._sdp_remote:
            self._sdp_remote = remote
            self.remote = remote
            self._latched = False
            self._media_since = time.monotonic()

    @property
    def expect_media(self) -> bool:
        """Whether the peer should be sending (not on hold); only then does silence count as no media."""
        return self._expect_media

    @expect_media.setter
    def expect_media(self, value: bool) -> None:
        if value and not self._expect_media:
            self._media_since = time.monotonic()
        self._expect_media = value

    @property
    def media_idle_s(self) -> float:
        """Seconds since the peer's last packet (or since media became due) while it should be sending; 0
        before :meth:`start` and while the call is on hold."""
        if self._task is None or not self._expect_media:
            return 0.0
        return max(0.0, time.monotonic() - max(self._last_rx or 0.0, self._media_since))

    def start(self) -> None:
        """Start sending and playing out: call once the call is established (the ACK of our 200 received,
        or our ACK sent), never before, so an unconfirmed SDP cannot aim our media at a third party."""
        if self._task is None:
            self._media_since = time.monotonic()
            self._task = asyncio.create_task(self._clock(), name=f"rtp-{self.local_port}")
            PACER.add(self)

    # --- sending -------------------------------------------------------------------------------------------
    async def write(self, pcm16k: bytes) -> None:
        """Queue 16 kHz PCM for sending; waits while more than ``max_output_ms`` is already queued, so a
        producer is paced by the RTP clock."""
        with self._lock:
            self._out.extend(pcm16k)
        while len(self._out) > self._max_out and self._task is not None and not self._task.done():
            self._room.clear()
            self._waiting = True
            await self._room.wait()

    def write_nowait(self, pcm16k: bytes) -> None:
        with self._lock:
            self._out.extend(pcm16k)

    def clear_output(self) -> None:
        """Drop queued audio (the caller interrupted the bot)."""
        with self._lock:
            self._out.clear()
        self._room.set()

    @property
    def queued_ms(self) -> float:
        return len(self._out) / BYTES_PER_MS

    def send_dtmf(self, keys: str, duration_ms: int = 160) -> None:
        """Queue key presses to send as RFC 4733 events (needs a negotiated telephone-event payload type)."""
        for key in keys:
            event_packets(key)  # validates
            with self._lock:
                self._dtmf_queue.append((key, duration_ms))

    def pace(self, now: float) -> None:
        """Send the next packet (called by the pacer thread every 20 ms)."""
        with self._lock:
            self._send_packet(now)

    def _send_packet(self, now: float) -> None:
        if self._dtmf_out or self._dtmf_queue:
            if not self._dtmf_out:
                key, duration = self._dtmf_queue.pop(0)
                self._dtmf_out = event_packets(key, duration)
                self._dtmf_ts = self._ts
                first = True
            else:
                first = False
            ev = self._dtmf_out.pop(0)
            if self.dtmf_pt is not None:
                self._emit(RtpPacket(self.dtmf_pt, self._seq, self._dtmf_ts, self._ssrc, ev.to_bytes(), first), now)
            # The audio clock keeps running under the tone so the next audio timestamp is right.
            self._take_audio()
            self._ts += SAMPLES_8K
            return
        pcm8 = self._take_audio()
        self._emit(RtpPacket(self.codec.payload_type, self._seq, self._ts, self._ssrc, self.codec.encode(pcm8)), now)
        self._ts += SAMPLES_8K

    def _take_audio(self) -> bytes:
        chunk = bytes(self._out[:FRAME_BYTES])
        del self._out[:FRAME_BYTES]
        if len(chunk) < FRAME_BYTES:
            chunk += bytes(FRAME_BYTES - len(chunk))
        if self._waiting and len(self._out) <= self._max_out and self._loop is not None:
            self._waiting = False
            with contextlib.suppress(RuntimeError):  # the loop closed under us (shutdown)
                self._loop.call_soon_threadsafe(self._room.set)
        return self._down.process(chunk)

    def _emit(self, packet: RtpPacket, now: float) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        remote, sock = self.remote, self._sock
        if remote is None or sock is None or not self.sending:
            return
        data = packet.to_bytes()
        if self._srtp is not None:
            data = self._srtp.protect(data)
        try:
            sock.sendto(data, remote)
        except (BlockingIOError, OSError):
            return  # a full send buffer or a vanished route: this packet is lost, the next one may pass
        self.stats.sent += 1
        if self._last_tx is not None:
            self.stats.max_send_gap_ms = max(self.stats.max_send_gap_ms, (now - self._last_tx) * 1000)
        self._last_tx = now

    # --- receiving -----------------------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: tuple) -> None:
        if is_rtcp(data):
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return
        if packet.payload_type not in (self.codec.payload_type, self.dtmf_pt):
            return
        source = (addr[0], addr[1])
        if not self._latched and not self._may_latch(source[0]) or self._latched and source != self.remote:
            self._stray(source)  # someone injecting audio or a stale stream: never switch to it
            return
        if self._srtp is not None:
            # Authenticate before latching: a forged packet must not pick the source.
            plain = self._srtp.unprotect(data)
            if plain is None:
                self.stats.srtp_failed += 1
                return
            try:
                packet = RtpPacket.parse(plain)
            except RtpError:
                return
        if not self._latched:
            # Symmetric RTP: answer to where the peer really sends from (it may be behind NAT).
            self.remote = source
            self._latched = True
        self.stats.received += 1
        now = time.monotonic()
        if self._last_rx is not None:
            self.stats.max_receive_gap_ms = max(self.stats.max_receive_gap_ms, (now - self._last_rx) * 1000)
        self._last_rx = now
        if packet.payload_type == self.dtmf_pt:
            key = self._dtmf_in.receive(packet.timestamp, packet.payload)
            if key is not None:
                self.stats.dtmf_received += 1
                if self.on_dtmf:
                    self.on_dtmf(key)
            return
        self._jitter.put(packet)

    def _may_latch(self, host: str) -> bool:
        if self.latching == "first":
            return True
        if self.latching == "signalling":
            return _ip(host) == self._signalling_ip
        # "sdp": no answer yet means no known peer; a host name in c= (rare) is compared as written.
        return self._sdp_remote is not None and _ip(host) == _ip(self._sdp_remote[0])

    def _stray(self, source: tuple[str, int]) -> None:
        self.stats.stray += 1
        self._stray_unlogged += 1
        now = time.monotonic()
        # One line per interval at most: a spray of packets must not become a flood of log lines.
        if self._stray_logged_at is None or now - self._stray_logged_at >= STRAY_LOG_INTERVAL_S:
            log.warning("RTP port %d: ignored %d stray packet(s), latest from %s:%d (latching %s, peer %s)",
                        self.local_port, self._stray_unlogged, source[0], source[1], self.latching,
                        f"{self.remote[0]}:{self.remote[1]}" if self._latched and self.remote else "not latched")
            self._stray_logged_at = now
            self._stray_unlogged = 0

    def _play_packet(self) -> None:
        packet = self._jitter.pop()
        pcm8 = self.codec.decode(packet.payload) if packet is not None else bytes(2 * SAMPLES_8K)
        if self.on_audio:
            self.on_audio(self._up.process(pcm8))

    # --- clock ---------------------------------------------------------------------------------------------
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            self._play_packet()
            if self._no_media(time.monotonic()):
                self._no_media_reported = True
                log.warning("RTP port %d: no media from the peer for %.0f s", self.local_port, self.no_media_timeout_s)
                if self.on_no_media:
                    self.on_no_media()
            due += FRAME_S
            delay = due - loop.time()
            if delay < -0.2:
                # The loop stalled for long: restart the schedule rather than burst many packets at once.
                due = loop.time()
                delay = 0
            await asyncio.sleep(max(delay, 0))

    def _no_media(self, now: float) -> bool:
        if not self.no_media_timeout_s or not self._expect_media or self._no_media_reported:
            return False
        return now - max(self._last_rx or 0.0, self._media_since) >= self.no_media_timeout_s

    async def close(self) -> None:
        PACER.remove(self)
        with self._lock:
            self._sock = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._room.set()
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | str:
    """``host`` as an address, so "::ffff:10.0.0.1" (a dual-stack socket) equals "10.0.0.1"; a name as is."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host.lower()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
