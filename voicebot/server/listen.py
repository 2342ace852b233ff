"""Listen in: a supervisor hears a live call over WebRTC and, as an option, whispers to the agent.

``POST /api/live/{call_id}/listen`` with ``{"sdp", "type": "offer", "whisper": false}`` answers with
``{"sdp", "type", "pc_id"}``: a connection that sends the call's audio mixed (caller and bot, or caller and
agent once bridged; see :mod:`voicebot.monitor`). Listen-only answers ``sendonly``: nothing the supervisor's
browser captures comes back into the call. With ``"whisper": true`` the supervisor's microphone is mixed into
what the agent hears, and only that: the caller never hears it (409 until an agent is bridged to the call).
The connection is closed when the call ends, or by ``DELETE /api/live/{call_id}/listen/{pc_id}``.

Barge-in: ``POST /api/live/{call_id}/takeover`` with ``{"sdp", "type": "offer"}``. On a call an agent has, the
supervisor joins it: their microphone is mixed into what both the caller and the agent hear, and into what the other
supervisors listening in hear; they hear both (``"mode": "conference"``; audited as ``join``, event
``call.joined``; closing the connection leaves the call to the agent). On a call the bot has, SIP or browser, the
supervisor takes the call over from the bot (:meth:`voicebot.calls.CallRunner.take_over`): the bot stops speaking
and answering, the supervisor's microphone goes to the caller and the caller's audio to the supervisor (listeners
hear both, the supervisor as ``agent``).
The record gets ``taken_over_by`` / ``taken_over_at`` and the outcome ``taken_over``; the bus gets
``call.taken_over``. Closing that connection (``DELETE .../listen/{pc_id}``) hangs up on the caller. 409 for a
call the bot no longer has (waiting in the queue).

Hand-back: ``POST /api/live/{call_id}/handback`` gives a call a supervisor took over back to the bot
(:meth:`voicebot.calls.CallRunner.hand_back`): the supervisor's connection closes without hanging up, the bot
says it is back and asks its pending question again, the dialog state as it was. Audited as ``handback``; the bus
gets ``call.handed_back`` (``by``). 409 when nobody has taken the call over, 404 for a call not in progress here.

Supervisors and admins only; every listen, whisper and take-over is written to the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from aiortc import MediaStreamTrack, RTCPeerConnection
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request

from audio.pcm import BYTES_PER_MS, FRAME_BYTES
from telephony.leg import Leg
from voicebot.calls.runner import RUNNERS, HandBackRefused, TakeOverRefused
from voicebot.monitor import MONITORS, Listener, Monitors, NotLive
from voicebot.server.access import Principal, require
from voicebot.server.request_body import json_value
from voicebot.server.rtc_audio import PacedAudioTrack, read_track
from voicebot.server.sdp_offer import UnusableOffer, set_offer

log = logging.getLogger(__name__)

router = APIRouter()

SUPERVISOR = require("supervisor", "admin")
"""The dependency of these endpoints (tests override it to run without a user store)."""
Supervisor = Annotated[Principal, Depends(SUPERVISOR)]

WHISPER_MAX_MS = 240  # supervisor audio waiting for the bridge's next frames; older audio is dropped
NO_AGENT = "no agent on this call yet"


class VoiceMixer:
    """The supervisor's voice mixed into what a bridged leg sends to its peer (an
    :class:`~telephony.leg.AudioMixer` on that leg until :meth:`remove`): on the agent's leg to whisper, on both
    legs to join the conversation.

    The leg mixes it into each 20 ms the bridge writes, so the peer's stream stays one frame per frame
    (writing the supervisor's audio beside the other side's would queue it after it: twice the audio, a growing
    delay). Nothing else gets it: the transcripts and the listeners take their audio from what each leg
    received, not from what it is sent.
    """

    def __init__(self, leg: Leg):
        self.leg = leg
        self._buf = bytearray()  # filled by the supervisor's track and drained by the leg, both on the loop
        leg.add_mixer(self)

    def push(self, pcm16k: bytes) -> None:
        """Queue the supervisor's 16 kHz PCM for the peer (only the newest ``WHISPER_MAX_MS`` are kept)."""
        self._buf.extend(pcm16k)
        excess = len(self._buf) - WHISPER_MAX_MS * BYTES_PER_MS
        if excess > 0:
            del self._buf[: excess + excess % 2]

    def next_audio(self, nbytes: int) -> bytes:
        """The supervisor's next ``nbytes`` (or what there is), taken off the queue."""
        extra = bytes(self._buf[:nbytes])
        del self._buf[:nbytes]
        return extra

    def remove(self) -> None:
        """The peer hears the call without the supervisor again."""
        self.leg.remove_mixer(self)


class CallerLine:
    """A supervisor who took a call over, on the caller's leg: what the caller says goes to the supervisor
    (:meth:`read`) and to the call's listeners; what the supervisor says (:meth:`push`) goes to the caller and to
    the listeners (as the ``agent`` source), until :meth:`remove`."""

    def __init__(self, leg: Leg, call_id: str, monitors: Monitors):
        self.leg = leg
        self.call_id = call_id
        self.monitors = monitors
        self._heard = bytearray()  # the caller's audio not yet sent to the supervisor
        self._lock = threading.Lock()  # the leg's sinks may run on its media thread
        leg.add_sink(self._from_caller)

    def _from_caller(self, pcm16k: bytes) -> None:
        self.monitors.feed(self.call_id, "caller", pcm16k)
        with self._lock:
            self._heard.extend(pcm16k)
            excess = len(self._heard) - WHISPER_MAX_MS * BYTES_PER_MS
            if excess > 0:  # the supervisor's connection fell behind: the newest audio matters
                del self._heard[: excess + excess % 2]

    def read(self) -> bytes:
        """The caller's next 20 ms for the supervisor (less, or nothing, when there is not that much yet)."""
        with self._lock:
            chunk = bytes(self._heard[:FRAME_BYTES])
            del self._heard[:FRAME_BYTES]
        return chunk

    def push(self, pcm16k: bytes) -> None:
        """20 ms of the supervisor's microphone, to the caller."""
        self.leg.write(pcm16k)
        self.monitors.feed(self.call_id, "agent", pcm16k)

    def remove(self) -> None:
        self.leg.remove_sink(self._from_caller)


def caller_leg_of(transfer: Any, call_id: str) -> Leg | None:
    """The caller's leg of ``call_id`` while the agent queue has it (waiting or bridged), or None."""
    live = getattr(transfer, "live", None) if transfer is not None else None
    leg = live.caller_leg(call_id) if live is not None else None
    return leg if leg is not None and leg.state == "answered" else None


def agent_leg_of(transfer: Any, call_id: str) -> Leg | None:
    """The answered leg of the agent bridged to ``call_id`` (through the agent queue), or None."""
    live = getattr(transfer, "live", None) if transfer is not None else None
    if live is None:
        return None
    for agent_id, current in list(transfer.current.items()):
        if current.get("call_id") == call_id and current.get("status") == "connected":
            leg = live.agent_leg(agent_id)
            if leg is not None and leg.state == "answered":
                return leg
    return None


@dataclass
class ListenSession:
    """One supervisor's connection to one call."""

    pc_id: str
    call_id: str
    username: str
    pc: RTCPeerConnection
    listener: Listener | None = None
    voices: list[VoiceMixer] = field(default_factory=list)  # the legs the supervisor's microphone goes to
    line: CallerLine | None = None  # a take-over: the supervisor speaks with the caller (closing hangs up)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closed: bool = False


class ListenSessions:
    """The open listen connections of the app, by ``pc_id``."""

    def __init__(self, monitors: Monitors = MONITORS):
        self.monitors = monitors
        self.sessions: dict[str, ListenSession] = {}

    async def open(self, call_id: str, username: str, sdp: str, kind: str,
                   talk_to: list[Leg] | tuple[Leg, ...] = (), *, joined: bool = False) -> ListenSession:
        """Answer a supervisor's offer for ``call_id``; their microphone goes to the peers of the legs ``talk_to``
        (the agent's leg: a whisper; the agent's and the caller's: a three-way conversation) and, if ``joined``
        (the conversation), to the call's other listeners too: a whisper never reaches them.
        Raises :class:`NotLive` if the call is not in progress, :class:`UnusableOffer` for an SDP that cannot be used."""
        loop = asyncio.get_running_loop()
        session = ListenSession(pc_id=f"listen-{uuid.uuid4().hex}", call_id=call_id, username=username,
                                pc=RTCPeerConnection())

        def call_ended() -> None:  # from whichever thread ended the call
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.close(session.pc_id)))

        try:
            session.listener = self.monitors.listen(call_id, call_ended)
            voices = session.voices = [VoiceMixer(leg) for leg in talk_to]

            def to_peers(pcm16k: bytes) -> None:
                for voice in voices:
                    voice.push(pcm16k)
                if joined:  # part of the call: the other supervisors listening in hear it, the speaker not
                    self.monitors.feed_listeners(call_id, session.pc_id, pcm16k, skip=session.listener)

            # Listen-only (nobody to talk to): the answer tells the browser not to send its microphone at all.
            await self._answer(session, sdp, kind, session.listener.read, to_peers if talk_to else None)
        except BaseException:
            await self._teardown(session)
            raise
        self.sessions[session.pc_id] = session
        if session.closed or session.listener.ended:  # the call ended while we answered
            await self.close(session.pc_id)
            raise NotLive(call_id)
        log.info("call %s: %s listens in (%s)%s", call_id, username, session.pc_id,
                 f" and talks to {len(talk_to)} leg(s)" if talk_to else "")
        return session

    async def take_over(self, call_id: str, username: str, sdp: str, kind: str) -> ListenSession:
        """Answer a supervisor's offer and take ``call_id`` over from the bot (see the module docstring).
        Raises :class:`NotLive` if this process runs no such call, :class:`UnusableOffer` for an SDP that cannot be used,
        :class:`TakeOverRefused` if the call cannot be taken over now."""
        runner = RUNNERS.get(call_id)
        if runner is None:
            raise NotLive(call_id)
        session = ListenSession(pc_id=f"takeover-{uuid.uuid4().hex}", call_id=call_id, username=username,
                                pc=RTCPeerConnection())

        def to_caller(pcm16k: bytes) -> None:
            if session.line is not None:
                session.line.push(pcm16k)

        try:
            await self._answer(session, sdp, kind, lambda: session.line.read() if session.line is not None else b"",
                               to_caller)
            # Only now, with a connection that works, does the bot let go of the caller.
            leg = await runner.take_over(username)
        except BaseException:
            await self._teardown(session)
            raise
        session.line = CallerLine(leg, call_id, self.monitors)
        self.sessions[session.pc_id] = session
        session.tasks.append(asyncio.ensure_future(self._close_when_ended(session, leg)))
        log.info("call %s: %s took the call over from the bot (%s)", call_id, username, session.pc_id)
        return session

    async def _answer(self, session: ListenSession, sdp: str, kind: str, read: Callable[[], bytes],
                      heard: Callable[[bytes], None] | None) -> None:
        """Answer the supervisor's offer on ``session.pc``: they hear ``read``, and their microphone goes to
        ``heard`` (None: listen-only); the session closes when the connection fails or closes. :class:`UnusableOffer`
        for an SDP that cannot be used."""
        pc = session.pc
        if heard is not None:
            @pc.on("track")  # fires inside setRemoteDescription
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "audio":
                    session.tasks.append(asyncio.ensure_future(read_track(track, heard)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(session.pc_id)

        await set_offer(pc, sdp, kind)
        pc.addTrack(PacedAudioTrack(read))
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                transceiver.direction = "sendrecv" if heard is not None else "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())

    async def hand_back(self, call_id: str, username: str) -> None:
        """Give ``call_id`` back to the bot: the take-over connection (whoever's) closes without hanging up.
        Raises :class:`NotLive` if this process runs no such call, :class:`HandBackRefused` if it cannot go back."""
        runner = RUNNERS.get(call_id)
        if runner is None:
            raise NotLive(call_id)
        runner.hand_back(username)
        # Before any await: from now on the supervisor's microphone no longer reaches the caller.
        for session in [s for s in self.sessions.values() if s.call_id == call_id and s.line is not None]:
            assert session.line is not None
            session.line.remove()
            session.line.leg.clear_audio()
            session.line = None
            await self.close(session.pc_id)

    async def _close_when_ended(self, session: ListenSession, leg: Leg) -> None:
        await leg.wait_ended()
        await self.close(session.pc_id)

    def get(self, pc_id: str) -> ListenSession | None:
        return self.sessions.get(pc_id)

    async def close(self, pc_id: str) -> bool:
        """End one connection; False if there is none by that id."""
        session = self.sessions.pop(pc_id, None)
        if session is None:
            return False
        await self._teardown(session)
        log.info("call %s: %s stopped listening (%s)", session.call_id, session.username, pc_id)
        return True

    async def _teardown(self, session: ListenSession) -> None:
        if session.closed:
            return
        session.closed = True
        for voice in session.voices:
            voice.remove()
        if session.listener is not None:
            self.monitors.remove(session.listener)
        for task in session.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            await session.pc.close()
        if session.line is not None:
            session.line.remove()
            if session.line.leg.state != "ended":
                await session.line.leg.hangup()  # the supervisor who had the caller left: the call is over


def sessions_of(app: FastAPI) -> ListenSessions:
    """The app's listen connections (``app.state.listen``), made on first use."""
    sessions = getattr(app.state, "listen", None)
    if sessions is None:
        sessions = app.state.listen = ListenSessions()
    return sessions


def _bad(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


async def _offer(request: Request) -> tuple[str, str, bool]:
    body = await json_value(request)
    if not isinstance(body, dict):
        raise _bad('the offer must be a JSON object {"sdp": ..., "type": "offer", "whisper": false}')
    sdp, kind, whisper = body.get("sdp"), body.get("type"), body.get("whisper", False)
    if not isinstance(sdp, str) or not sdp.lstrip().startswith("v=0") or "m=audio" not in sdp:
        raise _bad('"sdp" must be an SDP offer with an audio section (starting with "v=0")')
    if kind != "offer":
        raise _bad(f'"type" must be "offer", not {kind!r}')
    if not isinstance(whisper, bool):
        raise _bad('"whisper" must be true or false')
    return sdp, kind, whisper


@router.post("/api/live/{call_id}/listen")
async def listen(call_id: str, request: Request, principal: Supervisor) -> dict[str, str]:
    """Answer a supervisor's WebRTC offer with the live call's audio (and, with ``whisper``, a way to the agent)."""
    monitors = sessions_of(request.app).monitors
    if not monitors.is_live(call_id):
        raise HTTPException(status_code=404, detail=f"no call {call_id} in progress")
    sdp, kind, whisper = await _offer(request)
    agent_leg = None
    if whisper:
        agent_leg = agent_leg_of(getattr(request.app.state, "transfer", None), call_id)
        if agent_leg is None:
            raise HTTPException(status_code=409, detail=NO_AGENT)
    try:
        session = await sessions_of(request.app).open(call_id, principal.username, sdp, kind,
                                                      [agent_leg] if agent_leg is not None else [])
    except NotLive:
        raise HTTPException(status_code=404, detail=f"no call {call_id} in progress") from None
    except UnusableOffer as exc:
        raise _bad(str(exc)) from None
    users = request.app.state.users
    await asyncio.to_thread(users.audit, principal.username, "listen", call_id)
    if whisper:
        await asyncio.to_thread(users.audit, principal.username, "whisper", call_id)
    answer = session.pc.localDescription
    return {"sdp": answer.sdp, "type": answer.type, "pc_id": session.pc_id}


@router.post("/api/live/{call_id}/takeover")
async def take_over(call_id: str, request: Request, principal: Supervisor) -> dict[str, str]:
    """Barge in: answer a supervisor's WebRTC offer and take the call over from the bot, or, on a call an agent
    has, join it (``mode``: ``takeover`` or ``conference``)."""
    sdp, kind, _whisper = await _offer(request)
    transfer = getattr(request.app.state, "transfer", None)
    agent_leg = agent_leg_of(transfer, call_id)
    if agent_leg is not None:
        return await _join(call_id, request, principal, sdp, kind, agent_leg)
    try:
        session = await sessions_of(request.app).take_over(call_id, principal.username, sdp, kind)
    except NotLive:
        raise HTTPException(status_code=404, detail=f"no call {call_id} in progress here") from None
    except UnusableOffer as exc:
        raise _bad(str(exc)) from None
    except TakeOverRefused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await asyncio.to_thread(request.app.state.users.audit, principal.username, "takeover", call_id)
    answer = session.pc.localDescription
    return {"sdp": answer.sdp, "type": answer.type, "pc_id": session.pc_id, "mode": "takeover"}


@router.post("/api/live/{call_id}/handback")
async def hand_back(call_id: str, request: Request, principal: Supervisor) -> dict[str, str]:
    """Give a call a supervisor took over back to the bot (it resumes where it was)."""
    try:
        await sessions_of(request.app).hand_back(call_id, principal.username)
    except NotLive:
        raise HTTPException(status_code=404, detail=f"no call {call_id} in progress here") from None
    except HandBackRefused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await asyncio.to_thread(request.app.state.users.audit, principal.username, "handback", call_id)
    return {"status": "handed_back", "call_id": call_id}


async def _join(call_id: str, request: Request, principal: Principal, sdp: str, kind: str,
                agent_leg: Leg) -> dict[str, str]:
    """A three-way conversation: the supervisor hears caller and agent, and both hear the supervisor."""
    caller_leg = caller_leg_of(getattr(request.app.state, "transfer", None), call_id)
    if caller_leg is None:
        raise HTTPException(status_code=409, detail="the caller's leg of this call is not here to join")
    try:
        session = await sessions_of(request.app).open(call_id, principal.username, sdp, kind, [agent_leg, caller_leg],
                                                      joined=True)
    except NotLive:
        raise HTTPException(status_code=404, detail=f"no call {call_id} in progress") from None
    except UnusableOffer as exc:
        raise _bad(str(exc)) from None
    await asyncio.to_thread(request.app.state.users.audit, principal.username, "join", call_id)
    if (bus := getattr(getattr(request.app.state, "runtime", None), "events", None)) is not None:
        bus.publish("call.joined", call_id=call_id, by=principal.username)
    answer = session.pc.localDescription
    return {"sdp": answer.sdp, "type": answer.type, "pc_id": session.pc_id, "mode": "conference"}


@router.delete("/api/live/{call_id}/listen/{pc_id}")
async def stop_listening(call_id: str, pc_id: str, request: Request,
                         principal: Supervisor) -> dict[str, str]:
    """End a listen connection."""
    sessions = sessions_of(request.app)
    session = sessions.get(pc_id)
    if session is None or session.call_id != call_id:
        raise HTTPException(status_code=404, detail=f"no listen connection {pc_id} on call {call_id}")
    await sessions.close(pc_id)
    return {"status": "closed", "pc_id": pc_id}
