"""Agents and queues over HTTP: the agent page and its REST API.

    GET  /agent                          the agent page (log in, state, hand-off packet, accept/decline, hang up)
    GET  /api/queues                     every queue: waiting callers, its agents with their state, statistics
    GET  /api/queues/{name}/stats        one queue's statistics
    GET  /api/agents                     every agent with state, calls, queues
    GET  /api/agents/{id}                one agent, with the hand-off packet of the call offered to / taken by them
                                         and ``controls``: the page's buttons that apply now
    GET  /api/agents/{id}/card           the customer's card of their current call ({"verified": false} unless
                                         the bot verified the caller)
    GET  /api/agents/{id}/wrapup         the wrap-up form of their current or last call, prefilled by the bot
    POST /api/agents/{id}/wrapup         {"disposition": "resolved" | "follow-up" | "escalated", "intents": [...],
                                         "summary": "..."}: into the contact history, audited
    GET  /api/agents/{id}/suggestions    knowledge entries matching what the caller of their call said last
    GET  /api/agents/{id}/summary        the running summary of their current call (voicebot.assist.summary)
    GET  /api/agents/{id}/next-action    the next best action for their current call ({"next": null} if none)
    POST /api/agents/{id}/action         {"action": NAME, "slots": {...}}: run a domain action on the caller's
                                         account as the agent (only the agent, on her own bridged call with a
                                         verified caller); audited, its result added to the call's transcript
    POST /api/agents/{id}/state          {"state": "available" | "paused" | "offline", "reason": "..."}
    POST /api/agents/{id}/phone          {"sdp", "type": "offer", "page": ID}: the page becomes the agent's phone
                                         (WebRTC); ``page``: the id it gives its events websocket (?page=ID), whose
                                         end closes the phone
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
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from dialogs.manager.handoff import HandoffPacket
from telephony.queue.acd import AgentSnapshot, QueueError, UnknownAgentError
from telephony.queue.store import STATUSES
from voicebot.assist import wrapup
from voicebot.assist.card import CustomerCard, customer_card, verified_customer
from voicebot.assist.next_action import NextActionError, next_best_action, parse_request, run_as_agent
from voicebot.assist.suggest import knowledge_suggestions, last_caller_words
from voicebot.assist.summary import BridgedTurn, RunningSummary, running_summary
from voicebot.redaction import Redactor
from voicebot.server.access import (
    LoggedIn,
    Principal,
    ensure_can_see_call,
    ensure_own_agent,
    page_or_login,
    require,
)
from voicebot.server.request_body import json_object
from voicebot.server.sdp_offer import UnusableOffer

if TYPE_CHECKING:
    from voicebot.server.agent_phone import AgentPhones
    from voicebot.transfer import TransferService

router = APIRouter()

NO_QUEUES = "no agent queue: configure agents: and queues: in voicebot.yaml"
STATES = ("available", "paused", "offline")
MAX_PAGE_ID = 64
STAFF = ("admin", "supervisor")
# What an agent may see of a caller waiting in a queue that is not theirs: the queue's length and waits.
WAITING_FOR_AGENTS = ("position", "priority", "waited_s", "state", "estimated_wait_s")


def controls(state: str, call_status: str | None, page_ringing: bool) -> tuple[str, ...]:
    """The agent page's buttons that apply to an agent in ACD ``state`` whose current call (offered or taken)
    is in ``call_status`` (ringing, answered, connected or None); ``page_ringing``: the page itself is the phone
    that rings. ``ready`` ends a wrap-up (sets the agent available)."""
    if state == "ringing":
        if call_status == "answered":  # picked up, the queue wants the agent to accept (agent_confirm)
            return ("accept", "decline")
        return ("answer", "decline") if page_ringing else ("decline",)
    if state == "busy":
        return ("hangup",)
    return {
        "offline": ("available",),
        "available": ("paused", "offline"),
        "paused": ("available", "offline"),
        "wrap_up": ("ready", "paused", "offline"),
    }.get(state, ())


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


def _own_agent(request: Request, who: Principal, agent_id: str) -> TransferService:
    """The transfer service for ``who`` acting as agent ``agent_id``: 403 unless they may, 404 without queues or
    without that agent."""
    ensure_own_agent(who, agent_id)
    service = _service(request)
    _agent(service, agent_id)
    return service


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
    """The agent, plus ``current``: the call offered to or taken by them, with its hand-off packet,
    ``controls``: the buttons that apply now (:func:`controls`), and ``ended``: ``{"call_id", "reason", "text"}``
    of their bridged call that just ended (why: :class:`voicebot.transfer.ending.CallEnding`) until they set their
    state again, else None."""
    ensure_own_agent(who, agent_id)
    service = _service(request)
    current = service.current.get(agent_id)
    snapshot = _agent(service, agent_id)
    page = _phones(request).get(agent_id)
    state = snapshot.state
    if current is not None and current.get("remote"):  # another node's call: its queue has the agent, not ours
        state = _remote_call_state(request, current)
    buttons = controls(state, current.get("status") if current else None, page is not None and page.ringing)
    last = service.last.get(agent_id) if current is None else None
    ended = {"call_id": last["call_id"], **last["ended"]} if last is not None and "ended" in last else None
    return {**snapshot.to_dict(), "current": _redactor(request).value(current), "controls": list(buttons),
            "ended": ended}


@router.get("/api/agents/{agent_id}/card")
async def card(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """The customer's card (:class:`voicebot.assist.CustomerCard`) of the call offered to or taken by the agent,
    as ``{"call_id", "verified": true, "card"}``; ``{"call_id", "verified": false}`` when the bot did not verify
    the caller. 409 when the agent has no call."""
    current = _current_call(_own_agent(request, who, agent_id), agent_id)
    found = await _card(request, _packet(current))
    if found is None:
        return {"call_id": current["call_id"], "verified": False}
    return {"call_id": current["call_id"], "verified": True, "card": _redactor(request).value(found.to_dict())}


def _packet(call: dict[str, Any]) -> HandoffPacket:
    return HandoffPacket.from_dict(call.get("handoff"))


async def _card(request: Request, packet: HandoffPacket) -> CustomerCard | None:
    """The card of the call's customer; None unless the bot verified them."""
    customer_id, contact_id = verified_customer(packet)
    if customer_id is None:
        return None
    database = request.app.state.runtime.engine.database

    def read() -> CustomerCard | None:
        with database.session() as session:
            return customer_card(session, customer_id, exclude_contact=contact_id)

    return await asyncio.to_thread(read)


def _call_to_wrap_up(service: TransferService, agent_id: str) -> dict[str, Any]:
    call = service.current.get(agent_id) or service.last.get(agent_id)
    if call is None:
        raise HTTPException(status_code=409, detail=f"{agent_id} has no call to wrap up")
    return call


async def _bridged(request: Request, call_id: str) -> list[BridgedTurn]:
    """The turns of the bridged part of a call, from its record (the agent's actions among them)."""
    store = getattr(request.app.state.runtime, "store", None)
    record = await asyncio.to_thread(store.get, call_id) if store is not None else None
    turns = [(t, t.get("extra") or {}) for t in (record or {}).get("turns", [])]
    return [BridgedTurn(str(t.get("speaker", "")), str(t.get("text", "")), extra.get("action"), extra.get("outcome"))
            for t, extra in turns if extra.get("kind") == "bridged"]


async def _summary(request: Request, call: dict[str, Any]) -> RunningSummary:
    """The running summary of ``call``: its hand-off and bridged turns, understood by the domain's NLU."""
    nlu = getattr(request.app.state.runtime.engine, "nlu", None)
    bridged = await _bridged(request, call["call_id"])
    return await asyncio.to_thread(running_summary, _packet(call), bridged, nlu.parse if nlu is not None else None)


def _current_call(service: TransferService, agent_id: str) -> dict[str, Any]:
    current = service.current.get(agent_id)
    if current is None:
        raise HTTPException(status_code=409, detail=f"{agent_id} has no call")
    return current


@router.get("/api/agents/{agent_id}/suggestions")
async def suggestions(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """``{"call_id", "said", "knowledge": [...]}``: the knowledge entries matching what the caller of the agent's
    call said last (empty without a knowledge base in the domain). 409 when the agent has no call."""
    current = _current_call(_own_agent(request, who, agent_id), agent_id)
    said = last_caller_words(await _bridged(request, current["call_id"]), _packet(current))
    knowledge = getattr(request.app.state.runtime.engine, "knowledge", None)
    found = await asyncio.to_thread(knowledge_suggestions, knowledge.retriever, said) if knowledge and said else ()
    return {"call_id": current["call_id"], "said": said, "knowledge": [k.to_dict() for k in found]}


@router.get("/api/agents/{agent_id}/summary")
async def summary(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """``{"call_id", "summary"}``: the running summary of the agent's call (text, intents, details, the caller's
    key sentences, the agent's actions). 409 when the agent has no call."""
    current = _current_call(_own_agent(request, who, agent_id), agent_id)
    found = await _summary(request, current)
    return {"call_id": current["call_id"], "summary": _redactor(request).value(found.to_dict())}


@router.get("/api/agents/{agent_id}/next-action")
async def next_action(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """``{"call_id", "verified", "next"}``: the next best action for the agent's call (None when no request of
    the call leads to a domain action). 409 when the agent has no call."""
    current = _current_call(_own_agent(request, who, agent_id), agent_id)
    domain = getattr(request.app.state.runtime.engine, "domain", None)
    packet = _packet(current)
    found = None
    if domain is not None:
        found = next_best_action(domain, packet, await _summary(request, current), await _card(request, packet))
    return {"call_id": current["call_id"], "verified": verified_customer(packet)[0] is not None,
            "next": _redactor(request).value(found.to_dict()) if found is not None else None}


@router.post("/api/agents/{agent_id}/action")
async def run_action(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """Run a domain action on the verified caller's account as the agent, through the bot's action code: 403
    for anyone but the agent herself, 409 without a bridged call or a verified caller, 400 for an action the
    domain does not have or missing slots. The result goes into the call's transcript."""
    ensure_own_agent(who, agent_id)
    if who.agent_id != agent_id:
        raise HTTPException(status_code=403, detail="only the agent on the call may run actions on it")
    current = _current_call(_own_agent(request, who, agent_id), agent_id)
    if current.get("status") != "connected":
        raise HTTPException(status_code=409, detail=f"{agent_id} is not connected to the caller")
    packet = _packet(current)
    customer_id, contact_id = verified_customer(packet)
    if customer_id is None:
        raise HTTPException(status_code=409, detail="the bot did not verify the caller: no action on the account")
    engine = request.app.state.runtime.engine
    domain = getattr(engine, "domain", None)
    if domain is None:
        raise HTTPException(status_code=404, detail="no domain: there are no actions to run")
    try:
        name, slots = parse_request(await json_object(request), domain)
        clock = getattr(engine, "clock", None)  # the bot's clock: the same "now" for the same action
        run = await asyncio.to_thread(run_as_agent, engine.database, name, slots, customer_id=customer_id,
                                      contact_id=contact_id, actor=f"agent:{who.username}",
                                      now=clock() if clock is not None else datetime.now(UTC))
    except NextActionError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    store = getattr(request.app.state.runtime, "store", None)
    if store is not None:
        await store.arun("add_turn", current["call_id"], "agent", run.text, datetime.now(UTC),
                         extra={"kind": "bridged", "action": run.action, "outcome": run.outcome})
    return {"call_id": current["call_id"], **_redactor(request).value(run.to_dict())}


@router.get("/api/agents/{agent_id}/wrapup")
async def get_wrapup(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """``{"call_id", "contact_id", "form"}``: the bot's proposal for the agent's current or last call."""
    service = _own_agent(request, who, agent_id)
    call = _call_to_wrap_up(service, agent_id)
    _, contact_id = verified_customer(_packet(call))
    form = wrapup.prefill(_packet(call), await _summary(request, call))
    return {"call_id": call["call_id"], "contact_id": contact_id, "form": _redactor(request).value(form.to_dict())}


@router.post("/api/agents/{agent_id}/wrapup")
async def save_wrapup(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """Save the agent's wrap-up into the call's contact (400 bad form, 409 no call or no contact)."""
    service = _own_agent(request, who, agent_id)
    call = _call_to_wrap_up(service, agent_id)
    _, contact_id = verified_customer(_packet(call))
    try:
        form = wrapup.parse(await json_object(request))
    except wrapup.WrapUpError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    if contact_id is None:
        raise HTTPException(status_code=409, detail="this call has no contact in the customer database")
    database = request.app.state.runtime.engine.database
    actor = f"agent:{who.username}"

    def write() -> None:
        with database.session() as session:
            wrapup.save(session, contact_id, form, actor, datetime.now(UTC))

    try:
        await asyncio.to_thread(write)
    except wrapup.WrapUpError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return {"call_id": call["call_id"], "contact_id": contact_id, "saved": form.to_dict()}


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
        service.set_agent_state(agent_id, state, reason)
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


def _remote_call_state(request: Request, current: dict[str, Any]) -> str:
    """The agent's state in the queue of the node whose call rings (or was answered on) her page here, as the
    events relayed from that node show it; fills in the call's hand-off packet and ``connected`` status."""
    relayed = request.app.state.live.get(current["call_id"])
    if relayed is not None:
        current["handoff"] = current.get("handoff") or relayed.handoff
        if current.get("status") == "answered" and relayed.state == "agent":
            current["status"] = "connected"
    return "busy" if current.get("status") == "connected" else "ringing"


def _remote_call(service: TransferService, agent_id: str) -> str | None:
    current = service.current.get(agent_id)
    return current.get("call_id") if current else None


@router.post("/api/agents/{agent_id}/accept")
async def accept(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    ensure_own_agent(who, agent_id)
    service = _service(request)
    assert service.runner is not None
    if service.pages is not None and service.pages.key(agent_id, "1"):  # the call is another node's
        return {"call_id": _remote_call(service, agent_id), "accepted": True}
    call_id = _offered_call(service, agent_id)
    if not service.runner.agent_accepted(call_id, agent_id):
        raise HTTPException(status_code=409, detail="the offer is no longer open")
    return {"call_id": call_id, "accepted": True}


@router.post("/api/agents/{agent_id}/phone")
async def phone(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """WebRTC signaling for the agent page as a phone: the page's SDP offer in, our answer out."""
    _own_agent(request, who, agent_id)
    body = await json_object(request)
    sdp, kind, page = body.get("sdp"), body.get("type"), body.get("page")
    if not isinstance(sdp, str) or not sdp.lstrip().startswith("v=0") or kind != "offer":
        raise HTTPException(status_code=400, detail='expected {"sdp": "v=0...", "type": "offer"}')
    if page is not None and not (isinstance(page, str) and 0 < len(page) <= MAX_PAGE_ID):
        raise HTTPException(status_code=400, detail=f'"page" must be the page\'s id (at most {MAX_PAGE_ID} characters)')
    try:
        answer = await _phones(request).connect(agent_id, sdp, kind, page)
    except UnusableOffer as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"sdp": answer.sdp, "type": answer.type}


@router.post("/api/agents/{agent_id}/answer")
async def answer(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    _own_agent(request, who, agent_id)
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
    if service.pages is not None and service.pages.key(agent_id, "2"):  # the call is another node's
        return {"call_id": _remote_call(service, agent_id), "declined": True}
    call_id = _offered_call(service, agent_id)
    service.runner.agent_declined(call_id, agent_id)
    return {"call_id": call_id, "declined": True}


@router.post("/api/agents/{agent_id}/hangup")
async def hangup(agent_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    service = _own_agent(request, who, agent_id)
    if service.live is not None and await service.live.hangup_agent(agent_id):
        return {"hung_up": True}
    page = _phones(request).get(agent_id)
    if page is None or page.leg is None or page.leg.state != "answered":  # a call from another node is the page's
        raise HTTPException(status_code=409, detail=f"{agent_id} has no call to hang up")
    await page.leg.hangup()
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
