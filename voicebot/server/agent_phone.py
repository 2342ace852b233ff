"""The agent page as the agent's phone: one WebRTC connection per logged-in page (aiortc), and a call leg
over it that the queue can ring, whisper to and bridge with a SIP caller.

The page connects once (like a softphone registering); each offered call rings it through :meth:`AgentPhone.ring`
and the page answers or declines with a button (or ``?autoanswer=1``). The page names itself (``page``, a random
id it also gives its events websocket): when that websocket closes or stops answering pings, the page is gone and
:meth:`AgentPhones.page_closed` closes its phone at once, long before its WebRTC connection would fail.
:class:`WebLeg` implements :class:`telephony.leg.Leg`, which :class:`telephony.queue.live.LiveQueue` and
:class:`telephony.bridge.Bridge` use. Audio on the leg is :mod:`audio.pcm` frames (16 kHz 16-bit mono, 20 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from audio.pcm import BYTES_PER_MS, FRAME_BYTES
from telephony.leg import LegBase
from telephony.sip.ua import DialError
from voicebot.server.rtc_audio import PacedAudioTrack, read_track
from voicebot.server.sdp_offer import set_offer

log = logging.getLogger(__name__)


class _Outbound(PacedAudioTrack):
    """What the agent hears: 20 ms frames from a buffer, silence when it is empty, paced in real time."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._lock = threading.Lock()

    def write(self, pcm: bytes) -> None:
        with self._lock:
            self._buf.extend(pcm)

    def clear(self) -> None:
        with self._lock:
            self._buf.clear()

    @property
    def queued_ms(self) -> float:
        return len(self._buf) / BYTES_PER_MS

    def next_chunk(self) -> bytes:
        with self._lock:
            chunk = bytes(self._buf[:FRAME_BYTES])
            del self._buf[:FRAME_BYTES]
        return chunk


class WebLeg(LegBase):
    """One call on an agent's page: ``ringing`` -> ``answered`` -> ``ended``."""

    channel = "webrtc"
    state: str

    def __init__(self, phone: AgentPhone, call_id: str):
        super().__init__()
        self.phone = phone
        self.call_id = call_id
        self.caller = phone.agent_id
        self.dialled: str | None = None
        self.state = "ringing"
        self.end_reason = ""
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self._media_at = time.monotonic()  # the last audio from the page, or when it was answered

    def _enqueue(self, pcm: bytes) -> None:
        self.phone.outbound.write(pcm)

    @property
    def queued_ms(self) -> float:
        return self.phone.outbound.queued_ms

    def clear_audio(self) -> None:
        self.phone.outbound.clear()

    async def hangup(self) -> None:
        self._end("local hangup")

    @property
    def media_idle_s(self) -> float:
        """Seconds since the page's microphone track last delivered audio (aiortc's track waits, silently,
        for RTP that no longer comes when the page or its network vanished)."""
        if self.state != "answered":
            return 0.0
        return max(0.0, time.monotonic() - self._media_at)

    def _end(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        self.end_reason = reason
        self.phone.outbound.clear()
        if self.phone.leg is self:
            self.phone.leg = None
        self.ended.set()
        self.answered.set()
        if self.phone.page_lost and not self.phone.closed.is_set():
            log.info("agent %s: the call ended and the page's events websocket did not come back: its phone is "
                     "closed", self.phone.agent_id)
            self.phone._closing = asyncio.get_running_loop().create_task(self.phone.close())

    def _audio_in(self, pcm: bytes) -> None:
        self._media_at = time.monotonic()
        self._audio_to_sinks(pcm)


class AgentPhone:
    """The WebRTC connection of one agent's page."""

    def __init__(self, agent_id: str, page_id: str | None = None):
        self.agent_id = agent_id
        self.page_id = page_id  # the page's own id, also on its events websocket (None: an older page)
        self.pc = RTCPeerConnection()
        self.outbound = _Outbound()
        self.leg: WebLeg | None = None
        self._ring: asyncio.Future[bool] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        # The page's events websocket went away during a call: the phone closes when the call ends, unless the
        # page's websocket comes back first (a network blip must not cut an agent off a caller; a page really gone
        # is noticed in the call by its media: ``WebLeg.media_idle_s``).
        self.page_lost = False
        self._closing: asyncio.Task[None] | None = None

    async def connect(self, sdp: str, kind: str) -> RTCSessionDescription:
        """Answer the page's offer; the page's microphone becomes the agent's voice. :class:`UnusableOffer` for an
        offer aiortc cannot use."""
        self.pc.addTrack(self.outbound)

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self._reader = asyncio.ensure_future(read_track(track, self._audio_in))

        @self.pc.on("connectionstatechange")
        async def on_state() -> None:
            if self.pc.connectionState in ("failed", "closed"):
                await self.close()

        await set_offer(self.pc, sdp, kind)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription

    def _audio_in(self, pcm: bytes) -> None:
        if self.leg is not None:
            self.leg._audio_in(pcm)

    @property
    def ringing(self) -> bool:
        return self._ring is not None and not self._ring.done()

    async def ring(self, call_id: str, timeout: float) -> WebLeg:
        """Ring the page until it answers; raises DialError 486 if busy, 603 if declined, 408 on timeout,
        480 if the page went away."""
        if self.closed.is_set():
            raise DialError(480, "agent page disconnected")
        if self.leg is not None or self.ringing:
            raise DialError(486, "busy")
        self._ring = asyncio.get_running_loop().create_future()
        # Kept here: closing the page ends the leg, which then is no longer self.leg.
        leg = self.leg = WebLeg(self, call_id)
        try:
            answered = await asyncio.wait_for(asyncio.shield(self._ring), timeout)
        except TimeoutError:
            leg._end("no answer")
            raise DialError(408, "no answer") from None
        except BaseException:
            leg._end("cancelled")
            raise
        finally:
            self._ring = None
        if self.closed.is_set():  # the page went away while it rang: not a decline, the page is gone
            leg._end("page disconnected")
            raise DialError(480, "page disconnected")
        if not answered:
            leg._end("declined")
            raise DialError(603, "declined")
        leg.state = "answered"
        leg._media_at = time.monotonic()  # the no-media clock starts with the answer, not with the ring
        leg.answered.set()
        return leg

    def answer(self) -> bool:
        """The page picked up; False if nothing was ringing."""
        if not self.ringing:
            return False
        assert self._ring is not None
        self._ring.set_result(True)
        return True

    def decline(self) -> bool:
        if not self.ringing:
            return False
        assert self._ring is not None
        self._ring.set_result(False)
        return True

    async def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        if self._ring is not None and not self._ring.done():
            self._ring.set_result(False)
        if self.leg is not None:
            self.leg._end("page disconnected")
        if self._reader is not None:
            self._reader.cancel()
        self.outbound.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()


PhoneListener = Callable[[str, bool], None]
"""``fn(agent_id, connected)``: an agent's page connected as a phone (True) or its connection ended (False)."""


class AgentPhones:
    """The pages connected as phones, by agent id."""

    def __init__(self) -> None:
        self.phones: dict[str, AgentPhone] = {}
        self.listeners: list[PhoneListener] = []
        self._watchers: set[asyncio.Task[None]] = set()

    def add_listener(self, listener: PhoneListener) -> None:
        """Tell ``listener`` of every page that connects or goes away (a cluster's registry of pages)."""
        self.listeners.append(listener)

    def remove_listener(self, listener: PhoneListener) -> None:
        self.listeners.remove(listener)

    def _notify(self, agent_id: str, connected: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(agent_id, connected)
            except Exception:
                log.exception("agent phone listener failed")

    async def _watch(self, phone: AgentPhone) -> None:
        await phone.closed.wait()
        if self.phones.get(phone.agent_id) in (phone, None):  # not when a newer connection replaced it
            self._notify(phone.agent_id, False)

    async def connect(self, agent_id: str, sdp: str, kind: str, page_id: str | None = None) -> RTCSessionDescription:
        """A page (``page_id``: its own id) connects as ``agent_id``'s phone (replacing an earlier connection of
        that agent)."""
        old = self.phones.pop(agent_id, None)
        if old is not None:
            await old.close()
        phone = AgentPhone(agent_id, page_id)
        self.phones[agent_id] = phone
        try:
            answer = await phone.connect(sdp, kind)
        except BaseException:  # an offer it cannot use (or a failure of ours): no half-made phone stays to ring
            if self.phones.get(agent_id) is phone:
                del self.phones[agent_id]
            await phone.close()
            raise
        watcher = asyncio.ensure_future(self._watch(phone))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        self._notify(agent_id, True)
        return answer

    async def page_closed(self, page_id: str, may_close: Callable[[str], bool]) -> list[str]:
        """The page ``page_id`` is gone (its events websocket closed or fell silent): close its phone, if it has one
        of an agent ``may_close`` allows (the websocket's user acts for that agent). The agents whose phone closed;
        a call ringing there fails at once with 480, and the listeners (a cluster's registry) are told. A phone in
        an answered call is kept until that call ends (:attr:`AgentPhone.page_lost`), unless the page comes back."""
        closed = []
        for phone in list(self.phones.values()):
            if phone.page_id != page_id or not may_close(phone.agent_id) or phone.closed.is_set():
                continue
            if phone.leg is not None and phone.leg.state == "answered":
                log.info("agent %s: the page's events websocket is gone during a call: its phone is kept until "
                         "the call ends", phone.agent_id)
                phone.page_lost = True
                continue
            log.info("agent %s: the page's events websocket is gone: its phone is closed", phone.agent_id)
            await phone.close()
            closed.append(phone.agent_id)
        return closed

    def page_back(self, page_id: str, may_close: Callable[[str], bool]) -> bool:
        """The page ``page_id`` opened its events websocket (again): whether it still has a phone here (if not, the
        page connects a new one). A phone kept through a call after the page's websocket went away stays."""
        alive = False
        for phone in self.phones.values():
            if phone.page_id == page_id and may_close(phone.agent_id) and not phone.closed.is_set():
                phone.page_lost = False
                alive = True
        return alive

    def get(self, agent_id: str) -> AgentPhone | None:
        phone = self.phones.get(agent_id)
        return phone if phone is not None and not phone.closed.is_set() else None

    async def ring(self, agent_id: str, call_id: str, timeout: float) -> WebLeg:
        phone = self.get(agent_id)
        if phone is None:
            raise DialError(480, "the agent page is not connected as a phone")
        return await phone.ring(call_id, timeout)

    async def close(self) -> None:
        for phone in list(self.phones.values()):
            await phone.close()
        self.phones.clear()
        for watcher in list(self._watchers):
            watcher.cancel()
