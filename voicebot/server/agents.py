"""Agents and queues over HTTP: the agent page and its REST API.

    GET  /agent                          the agent page (log in, state, hand-off packet, accept/decline, hang up)
    GET  /api/queues                     every queue: waiting callers, its agents with their state, statistics
    GET  /api/queues/{name}/stats        one queue's statistics
    GET  /api/agents                     every agent with state, calls, queues
    GET  /api/agents/{id}                one agent, with the hand-off packet of the call offered to / taken by them
    POST /api/agents/{id}/state          {"state": "available" | "paused" | "offline", "reason": "..."}
    POST /api/agents/{id}/phone          {"sdp", "type": "offer"}: the page becomes the agent's phone (WebRTC)
    POST /api/agents/{id}/answer         pick up the call ringing on the page
    POST /api/agents/{id}/accept         accept the call offered (queues with agent_confirm)
    POST /api/agents/{id}/decline        decline it (the next agent is tried)
    POST /api/agents/{id}/hangup         hang up the agent's leg
    GET  /api/callbacks                  callback requests (?status=pending|done|all, ?queue=)
    POST /api/callbacks/{id}             {"status": "done"}
    GET  /api/voicemails                 voice messages with transcript (?status=new|heard|all)
    GET  /api/voicemails/{id}.wav        one message's audio
    POST /api/voicemails/{id}            {"status": "heard"}

Without ``agents:`` / ``queues:`` in the config the queue endpoints answer 404 with a message saying so.

Every route needs a login (voicebot.server.access). Supervisors and admins see and may do everything; an
agent sees only themselves (the agent list holds just them, the queues without the waiting callers' details)
and acts only as themselves; callbacks and voice messages are for supervisors and admins.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from telephony.queue.acd import AgentSnapshot, QueueError, UnknownAgentError
from telephony.queue.store import STATUSES
from voicebot.redaction import Redactor
from voicebot.server.access import LoggedIn, ensure_can_see_call, ensure_own_agent, page_or_login, require
from voicebot.server.request_body import json_object

if TYPE_CHECKING:
    from voicebot.server.agent_phone import AgentPhones
    from voicebot.transfer import TransferService

router = APIRouter()

NO_QUEUES = "no agent queue: configure agents: and queues: in voicebot.yaml"
STATES = ("available", "paused", "offline")
STAFF = ("admin", "supervisor")
# What an agent may see of a caller waiting in a queue that is not theirs: the queue's length and waits.
WAITING_FOR_AGENTS = ("position", "priority", "waited_s", "state", "estimated_wait_s")


def _redactor(request: Request) -> Redactor:
    runtime = getattr(request.app.state, "runtime", None)
    return Redactor.from_settings(getattr(runtime, "settings", None))


def _phones(request: Request) -> AgentPhones:
    return request.app.state.phones


def _service(request: Request) -> TransferService:
    service = getattr(request.app.state, "transfer", None)
    if service is None or service.runner is None:
        raise HTTPException(status_code=404, detail=NO_QUEUES)
    return service


def _agent(service: TransferService, agent_id: str) -> AgentSnapshot:
    assert service.runner is not None
    for agent in service.runner.acd.agents():
        if agent.id == agent_id:
            return agent
    raise HTTPException(status_code=404, detail=f"no agent with id {agent_id!r}")


@router.get("/agent", include_in_schema=False)
async def agent_page(request: Request) -> Response:
    return await page_or_login(request, "agent.html")


@router.get("/api/queues")
async def queues(request: Request, who: LoggedIn) -> dict[str, Any]:
    """Each queue with its ``waiting`` callers, its ``agents`` with their ``state``, and ``stats``."""
    service = _service(request)
    assert service.runner is not None
    snapshot = service.runner.acd.snapshot()
    if not who.sees_all:
        for queue in snapshot.get("queues", []):
            queue["waiting"] = [{k: w.get(k) for k in WAITING_FOR_AGENTS} for w in queue.get("waiting", [])]
    return _redactor(request).value(snapshot)  # the waiting callers' summaries


@router.get("/api/queues/{name}/stats", dependencies=[Depends(require())])
async def queue_stats(name: str, request: Request) -> dict[str, Any]:
    service = _service(request)
    assert service.runner is not None
    try:
        return service.runner.acd.queue_stats(name)
    except QueueError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


@router.get("/api/agents")
async def agents(request: Request, who: LoggedIn) -> dict[str, Any]:
    """Every agent (supervisors, admins); an agent gets only themselves."""
    service = _service(request)
    assert service.runner is not None
    snapshot = service.runner.acd.agents()
    if not who.sees_all:
        snapshot = [a for a in snapshot if a.id == who.agent_id]
    return {"agents": [a.to_dict() for a in snapshot]}


@router.get("/api/agents/{agent_id}")
async def agent(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """The agent, plus ``current``: the call offered to or taken by them, with its hand-off packet."""
    ensure_own_agent(who, agent_id)
    service = _service(request)
    current = service.current.get(agent_id)
    return {**_agent(service, agent_id).to_dict(), "current": _redactor(request).value(current)}


@router.post("/api/agents/{agent_id}/state")
async def set_state(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """Log in (``available``), pause (with ``reason``) or log out (``offline``). 404 unknown agent, 400 bad
    state."""
    ensure_own_agent(who, agent_id)
    service = _service(request)
    assert service.runner is not None
    body = await json_object(request)
    state, reason = body.get("state"), body.get("reason")
    if not isinstance(state, str) or state not in STATES:
        raise HTTPException(status_code=400, detail=f'"state" must be one of {", ".join(STATES)}')
    if reason is not None and (not isinstance(reason, str) or len(reason) > 100):
        raise HTTPException(status_code=400, detail='"reason" must be a string of at most 100 characters')
    try:
        service.runner.set_agent_state(agent_id, state, reason)
    except UnknownAgentError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except QueueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    if who.agent_id != agent_id:  # a supervisor set someone else's state: on record
        await asyncio.to_thread(request.app.state.users.audit, who.username, f"agent_{state}", None, agent_id)
    return _agent(service, agent_id).to_dict()


def _offered_call(service: TransferService, agent_id: str) -> str:
    offered = _agent(service, agent_id).offered_call
    if not offered:
        raise HTTPException(status_code=409, detail=f"no call is being offered to {agent_id}")
    return offered


@router.post("/api/agents/{agent_id}/accept")
async def accept(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    ensure_own_agent(who, agent_id)
    service = _service(request)
    assert service.runner is not None
    call_id = _offered_call(service, agent_id)
    if not service.runner.agent_accepted(call_id, agent_id):
        raise HTTPException(status_code=409, detail="the offer is no longer open")
    return {"call_id": call_id, "accepted": True}


@router.post("/api/agents/{agent_id}/phone")
async def phone(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """WebRTC signaling for the agent page as a phone: the page's SDP offer in, our answer out."""
    ensure_own_agent(who, agent_id)
    service = _service(request)
    _agent(service, agent_id)
    body = await json_object(request)
    sdp, kind = body.get("sdp"), body.get("type")
    if not isinstance(sdp, str) or not sdp.lstrip().startswith("v=0") or kind != "offer":
        raise HTTPException(status_code=400, detail='expected {"sdp": "v=0...", "type": "offer"}')
    try:
        answer = await _phones(request).connect(agent_id, sdp, kind)
    except Exception as exc:  # aiortc rejects SDP it cannot use with assorted errors
        raise HTTPException(status_code=400, detail=f"cannot use this SDP offer: {exc}") from None
    return {"sdp": answer.sdp, "type": answer.type}


@router.post("/api/agents/{agent_id}/answer")
async def answer(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    ensure_own_agent(who, agent_id)
    service = _service(request)
    _agent(service, agent_id)
    page = _phones(request).get(agent_id)
    if page is None or not page.answer():
        raise HTTPException(status_code=409, detail=f"nothing is ringing on {agent_id}'s page")
    return {"answered": True}


@router.post("/api/agents/{agent_id}/decline")
async def decline(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    ensure_own_agent(who, agent_id)
    service = _service(request)
    assert service.runner is not None
    page = _phones(request).get(agent_id)
    if page is not None and page.decline():
        return {"declined": True}
    call_id = _offered_call(service, agent_id)
    service.runner.agent_declined(call_id, agent_id)
    return {"call_id": call_id, "declined": True}


@router.post("/api/agents/{agent_id}/hangup")
async def hangup(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    ensure_own_agent(who, agent_id)
    service = _service(request)
    _agent(service, agent_id)
    if service.live is None or not await service.live.hangup_agent(agent_id):
        raise HTTPException(status_code=409, detail=f"{agent_id} has no call to hang up")
    return {"hung_up": True}


@router.get("/api/callbacks", dependencies=[Depends(require(*STAFF))])
async def callbacks(request: Request, status: str = "pending", queue: str | None = None) -> dict[str, Any]:
    service = _service(request)
    rows = await asyncio.to_thread(service.callbacks.requests, queue=queue, status=None if status == "all" else status)
    return {"callbacks": [r.as_dict() for r in rows]}


@router.post("/api/callbacks/{request_id}", dependencies=[Depends(require(*STAFF))])
async def set_callback(request_id: int, request: Request) -> dict[str, Any]:
    service = _service(request)
    body = await json_object(request)
    status = body.get("status")
    if status not in STATUSES:
        raise HTTPException(status_code=400, detail=f'"status" must be one of {", ".join(STATUSES)}')
    if not await asyncio.to_thread(service.callbacks.set_status, request_id, status):
        raise HTTPException(status_code=404, detail=f"no callback request {request_id}")
    return {"id": request_id, "status": status}


@router.get("/api/voicemails", dependencies=[Depends(require(*STAFF))])
async def voicemails(request: Request, status: str = "new") -> dict[str, Any]:
    service = _service(request)
    rows = await asyncio.to_thread(service.records.voicemails, None if status == "all" else status)
    return {"voicemails": _redactor(request).value(rows)}


@router.get("/api/voicemails/{voicemail_id}.wav", dependencies=[Depends(require(*STAFF))])
async def voicemail_audio(voicemail_id: int, request: Request) -> Response:
    service = _service(request)
    wav = await asyncio.to_thread(service.records.voicemail_wav, voicemail_id)
    if wav is None:
        raise HTTPException(status_code=404, detail=f"no voice message {voicemail_id}")
    return Response(content=wav, media_type="audio/wav")


@router.post("/api/voicemails/{voicemail_id}", dependencies=[Depends(require(*STAFF))])
async def set_voicemail(voicemail_id: int, request: Request) -> dict[str, Any]:
    service = _service(request)
    status = (await json_object(request)).get("status")
    if status not in ("new", "heard", "done"):
        raise HTTPException(status_code=400, detail='"status" must be new, heard or done')
    if not await asyncio.to_thread(service.records.set_voicemail_status, voicemail_id, status):
        raise HTTPException(status_code=404, detail=f"no voice message {voicemail_id}")
    return {"id": voicemail_id, "status": status}


@router.get("/api/calls/{call_id}/transfer")
async def call_transfer(call_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """How the call's hand-off to the queue ended: queue, agent_id, outcome, wait_s, talk_s."""
    service = _service(request)
    await ensure_can_see_call(request, who, call_id)
    record = await asyncio.to_thread(service.records.of_call, call_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"call {call_id} was not handed to the queue")
    return _redactor(request).value(record)
