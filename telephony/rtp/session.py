"""One RTP audio stream: a UDP socket, a jitter buffer for what arrives, steady 20 ms pacing for what we send.

Audio crosses this boundary as 16 kHz 16-bit mono PCM; G.711 coding and the 8 kHz <-> 16 kHz conversion
happen inside. Every 20 ms the application gets the next frame in (silence where packets are missing) from
a task on the asyncio loop, and the peer gets the next packet out (silence when we have nothing to say, which
keeps NAT bindings open and phones' jitter buffers happy) from the pacer thread, so stalls of the loop do not
become gaps in what the caller hears.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from telephony.codecs import PCMU, Codec, StreamResampler
from telephony.dtmf import DtmfReceiver, TelephoneEvent, event_packets
from telephony.rtp.jitter import JitterBuffer
from telephony.rtp.pacer import PACER
from telephony.rtp.packet import RtpError, RtpPacket, is_rtcp

log = logging.getLogger(__name__)

PTIME_S = 0.02
SAMPLES_8K = 160
FRAME_16K_BYTES = 640  # 20 ms at 16 kHz, 16-bit


@dataclass
class RtpStats:
    sent: int = 0
    received: int = 0
    max_send_gap_ms: float = 0.0
    max_receive_gap_ms: float = 0.0
    dtmf_received: int = 0
    foreign: int = 0  # packets from an address other than the peer's, dropped


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
    receives each key press once.
    """

    def __init__(self, on_audio: Callable[[bytes], None] | None = None,
                 on_dtmf: Callable[[str], None] | None = None, jitter_prefetch: int = 3,
                 max_output_ms: int = 80):
        self.on_audio = on_audio
        self.on_dtmf = on_dtmf
        self.codec: Codec = PCMU
        self.dtmf_pt: int | None = None
        self.remote: tuple[str, int] | None = None
        self.local_port: int = 0
        self.sending = True
        self.stats = RtpStats()
        self._jitter = JitterBuffer(prefetch=jitter_prefetch)
        self._dtmf_in = DtmfReceiver()
        self._up = StreamResampler(8000, 16000)
        self._down = StreamResampler(16000, 8000)
        self._out = bytearray()
        self._max_out = max_output_ms * 32  # bytes of 16 kHz PCM
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
        self._last_rx: float | None = None
        self._last_tx: float | None = None

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

    def configure(self, codec: Codec, dtmf_pt: int | None, remote: tuple[str, int]) -> None:
        """Set what offer/answer decided; may be called again on re-INVITE."""
        self.codec = codec
        self.dtmf_pt = dtmf_pt
        if remote != self.remote:
            self.remote = remote
            self._latched = False

    def start(self) -> None:
        if self._task is None:
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
        return len(self._out) / 32

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
        chunk = bytes(self._out[:FRAME_16K_BYTES])
        del self._out[:FRAME_16K_BYTES]
        if len(chunk) < FRAME_16K_BYTES:
            chunk += bytes(FRAME_16K_BYTES - len(chunk))
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
        try:
            sock.sendto(packet.to_bytes(), remote)
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
        if not self._latched:
            # Symmetric RTP: answer to where the peer really sends from (it may be behind NAT).
            self.remote = (addr[0], addr[1])
            self._latched = True
        elif (addr[0], addr[1]) != self.remote:
            self.stats.foreign += 1  # not our peer: someone injecting audio or a stale stream; ignore it
            return
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
            due += PTIME_S
            delay = due - loop.time()
            if delay < -0.2:
                # The loop stalled for long: restart the schedule rather than burst many packets at once.
                due = loop.time()
                delay = 0
            await asyncio.sleep(max(delay, 0))

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
