"""What the supervisor dashboard (and any CRM or wallboard) reads: live events, live calls, history, figures.

    WS   /ws/events          JSON events (voicebot.events), first a ``hello`` snapshot; agents get their calls only
    GET  /api/live           {"calls": [LiveCall ...]}
    GET  /api/live/{id}      LiveCall + ``turns`` stored so far + ``handoff`` (packet or null); audit-logged
    GET  /api/calls          history search: q, number, intent, outcome, since, until, min_frustration, limit, offset
    GET  /api/stats          calls per hour, outcomes, reply latency, frustration by hour (since, until)
    GET  /api/calls/export   calls with turns, scorecards and notes as CSV or JSON (format, kind, from, to)
    POST /api/calls/{id}/notes  a reviewer's note and tags on a call (supervisors, admins; audit-logged)
    GET  /api/analytics      trends per hour/day/week, per intent and per agent (from, to, bucket; staff)
    GET  /api/analytics/agents  per-agent figures (an agent gets only their own)

History search also filters on scorecard items (``qa=ai_disclosure=fail``, repeatable) and reviewers' tags (``tag``).

Every route needs a login (``voicebot.server.access``); supervisors and admins see every call, agents only the
calls handed to them. A websocket without a valid session is closed with code 4401. A program passes its token
as the subprotocol ``voicebot.bearer.TOKEN`` together with ``voicebot`` (``?token=`` still works but puts the
token in URLs); a page of another origin is refused (``voicebot.server.http_guard``, close code 4403).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from voicebot.events import Event
from voicebot.live import LiveCall, LiveCalls
from voicebot.redaction import Redactor
from voicebot.runtime import Runtime
from voicebot.server.access import (
    WS_PROTOCOL,
    LoggedIn,
    Principal,
    Staff,
    can_see_call,
    own_call_ids,
    websocket_principal,
    ws_protocols,
)

log = logging.getLogger(__name__)

router = APIRouter()

CLOSE_LOGIN_REQUIRED = 4401
# Events a dashboard may fall behind by before the oldest are dropped (it is told, and re-reads /api/live).
SUBSCRIBER_BACKLOG = 1000
MAX_PAGE = 1000
DEFAULT_STATS_HOURS = 24
MAX_NOTE = 4000
MAX_ANALYTICS_DAYS = 400
MAX_TAGS = 20


def live_calls(runtime: Runtime) -> LiveCalls:
    """The registry of live calls of a server, listening to ``runtime.events``."""
    live = LiveCalls(runtime.events, getattr(runtime.settings, "supervisor", None))
    live.attach()
    return live


def _live(conn: Request | WebSocket) -> LiveCalls:
    return conn.app.state.live


def _runtime(conn: Request | WebSocket) -> Runtime:
    return conn.app.state.runtime


def _redactor(conn: Request | WebSocket) -> Redactor:
    redactor = getattr(conn.app.state, "supervisor_redactor", None)
    if redactor is None:
        redactor = Redactor.from_settings(_runtime(conn).settings)
        conn.app.state.supervisor_redactor = redactor
    return redactor


def _sees(principal: Principal, live: LiveCalls):
    """A predicate on LiveCalls: may ``principal`` see it (agents: calls they have or had)."""
    if principal.sees_all:
        return lambda _call: True
    agent = principal.agent_id
    return lambda call: agent is not None and (call.agent_id == agent or live.agent_of(call.id) == agent)


def _event_filter(principal: Principal, live: LiveCalls):
    """Which bus events a websocket of ``principal`` gets: all for staff; an agent's own calls' events, the
    alerts assigned to them and those taken from them (sent as :func:`_for_agent` says)."""
    if principal.sees_all:
        return None
    agent = principal.agent_id
    username = principal.username

    def accept(event: Event) -> bool:
        call_id = event.get("call_id")
        if event.get("type") == "alert.updated" and username in (
                (event.get("alert") or {}).get("assigned_to"), event.get("withdrawn_from")):
            return True  # an alert a supervisor gave this agent, or took from them
        return agent is not None and isinstance(call_id, str) and live.agent_of(call_id) == agent

    return accept


def _for_agent(event: Event, username: str) -> dict[str, Any]:
    """``event`` as a user who sees only their own alerts gets it: an alert not (or no longer) assigned to them is
    only its id, as ``alert.withdrawn`` (their page drops it)."""
    alert = event.get("alert")
    if event.get("type") != "alert.updated" or not isinstance(alert, dict) or alert.get("assigned_to") == username:
        return event
    return {"type": "alert.withdrawn", "seq": event.get("seq"), "ts": event.get("ts"), "alert_id": alert.get("id")}


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, default=str, separators=(",", ":"))


def _queues_now(conn: Request | WebSocket, live: LiveCalls) -> tuple[list[Any], list[Any]]:
    """The queue board: from the last ``queue`` event, else asked of the agent queue, else empty."""
    queues, agents = live.queues, live.agents
    service = getattr(conn.app.state, "transfer", None)
    runner = getattr(service, "runner", None)
    if queues is None and runner is not None:
        queues = runner.acd.snapshot()["queues"]
    if agents is None and runner is not None:
        agents = runner.acd.agents_snapshot()
    return queues or [], agents or []


async def _page_gone(ws: WebSocket, principal: Principal, page_id: str) -> None:
    """The agent page ``page_id`` closed its events websocket or stopped answering pings: its phone (if this
    user's) is closed at once (voicebot.server.agent_phone)."""
    phones = getattr(ws.app.state, "phones", None)
    if phones is not None:
        await phones.page_closed(page_id, lambda agent_id: principal.sees_all or principal.agent_id == agent_id)


@router.websocket("/ws/events")
async def events_socket(ws: WebSocket) -> None:
    """Stream events as JSON text messages; the first is ``{"type": "hello", "calls", "queues", "agents",
    "frustration_levels"}`` (the scores at which a caller is annoyed / frustrated: ``prosody`` in the config).

    An agent page connects with ``?page=ID`` (the id it gave its phone): it gets ``{"type": "ping"}`` every third of
    ``webrtc.agent_page_timeout_s`` and must send something (``{"type": "pong"}``) within that timeout; a page that
    does not, or whose socket closes, is gone and its phone is closed."""
    principal = await websocket_principal(ws)
    # A client sending its token as the subprotocol voicebot.bearer.TOKEN offers "voicebot" too, answered here.
    protocol = WS_PROTOCOL if WS_PROTOCOL in ws_protocols(ws) else None
    await ws.accept(subprotocol=protocol)  # accepted first so the client sees the 4401 close code
    if principal is None:
        await ws.close(code=CLOSE_LOGIN_REQUIRED, reason="login required")
        return
    live = _live(ws)
    bus = _runtime(ws).events
    redactor = _redactor(ws)
    # Subscribed before the snapshot is taken (no await between): nothing falls between the two.
    sub = bus.subscribe(maxsize=SUBSCRIBER_BACKLOG, accept=_event_filter(principal, live))
    queues, agents = _queues_now(ws, live) if principal.sees_all else ([], [])
    prosody = _runtime(ws).settings.prosody
    hello = {
        "type": "hello",
        "seq": live.last_seq,
        "user": {"username": principal.username, "role": principal.role, "agent_id": principal.agent_id},
        "calls": live.snapshot(_sees(principal, live)),
        "queues": redactor.value(queues),
        "agents": agents,
        "frustration_levels": {"annoyed": prosody.annoyed, "frustrated": prosody.frustrated},
    }

    page_id = ws.query_params.get("page") or None
    if page_id is not None:  # an agent page: whether its phone is still connected here (after a network blip)
        phones = getattr(ws.app.state, "phones", None)
        hello["phone"] = phones is not None and phones.page_back(
            page_id, lambda agent_id: principal.sees_all or principal.agent_id == agent_id)
    loop = asyncio.get_running_loop()
    heard = [loop.time()]  # when the client last sent anything (an agent page's pong)
    sending = asyncio.Lock()  # the pings and the events share the socket

    async def send(text: str) -> None:
        async with sending:
            await ws.send_text(text)

    async def watch_client() -> None:
        # The client sends nothing we need but pongs; reading notices it leaving, which ends the subscription.
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                heard[0] = loop.time()
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            sub.close()

    async def ping_page(page_id: str, timeout_s: float) -> None:
        # A vanished browser (network gone, machine asleep) closes nothing: its silence is what tells. A send
        # stuck on a dead connection must not hold up the verdict, hence the bounded sends.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                await asyncio.sleep(timeout_s / 3)  # first: the hello goes out before any ping
                if loop.time() - heard[0] > timeout_s:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(send('{"type":"ping"}'), timeout_s / 3)
        log.info("events websocket of %s's page %s: silent for %.0f s, the page is gone", principal.username,
                 page_id, timeout_s)
        sub.close()
        await asyncio.shield(_page_gone(ws, principal, page_id))  # not cut short when the socket's end cancels us

    watcher = asyncio.create_task(watch_client())
    tasks = [watcher]
    if page_id is not None:
        tasks.append(asyncio.create_task(ping_page(page_id, _runtime(ws).settings.webrtc.agent_page_timeout_s)))
    dropped = 0
    try:
        await send(_dumps(hello))
        async for event in sub:
            if sub.dropped > dropped:
                await send(_dumps({"type": "dropped", "n": sub.dropped - dropped}))
                dropped = sub.dropped
            if event.get("type") == "queue" and event.get("node") is not None and live.agents is not None:
                event = {**event, "agents": live.agents}  # a cluster: every node's view of the agents, merged
            if not principal.sees_all:
                event = _for_agent(event, principal.username)
            if event.get("type") in ("handoff", "queue"):
                # Packets (a hand-off, the summaries of waiting callers) quote the caller; turns were redacted
                # when stored, these were not.
                event = redactor.value(event)
            await send(_dumps(event))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away mid-send
    finally:
        sub.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if page_id is not None:
            await _page_gone(ws, principal, page_id)
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the client may have gone already
            await ws.close()


@router.get("/api/live")
async def live_list(request: Request, who: LoggedIn) -> dict[str, Any]:
    """Every call in progress the user may see."""
    live = _live(request)
    return {"calls": live.snapshot(_sees(who, live))}


async def _may_see(request: Request, who: Principal, call: LiveCall | None, call_id: str) -> bool:
    if who.sees_all:
        return True
    if call is not None and _sees(who, _live(request))(call):
        return True
    return await asyncio.to_thread(can_see_call, request, who, call_id)


@router.get("/api/live/{call_id}")
async def live_call(call_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """One call in progress with its stored turns and hand-off packet; opening it is audit-logged."""
    call = _live(request).get(call_id)
    if call is None or not await _may_see(request, who, call, call_id):
        raise HTTPException(status_code=404, detail=f"no call {call_id} in progress")
    record = await asyncio.to_thread(_runtime(request).store.get, call_id)
    users = getattr(request.app.state, "users", None)
    if users is not None:
        await asyncio.to_thread(users.audit, who.username, "open_call", call_id)
    out = {**call.as_dict(), "turns": (record or {}).get("turns", []), "handoff": call.handoff}
    return _redactor(request).call(out)


def _when(value: str | None, name: str) -> datetime | None:
    """An ISO date or date-time from a query parameter (UTC unless it says otherwise); 400 if unreadable."""
    if value is None or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            status_code=400, detail=f"{name} must be an ISO date or date-time such as 2026-11-22T08:00, not {value!r}"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


@router.get("/api/calls")
async def search_calls(
    request: Request,
    response: Response,
    who: LoggedIn,
    q: str | None = None,
    number: str | None = None,
    intent: str | None = None,
    outcome: str | None = None,
    since: str | None = None,
    until: str | None = None,
    min_frustration: float | None = None,
    qa: Annotated[list[str] | None, Query()] = None,
    tag: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Calls matching every filter given, newest first; ``X-Total-Count`` says how many match in all.

    Each row: id, channel, caller_id, dialled, start, end, outcome, end_reason, intents (names),
    frustration_max, agent_id, duration_s, qa_failed (the scorecard's failed items). Agents get only the calls
    handed to them.
    """
    filters: dict[str, Any] = {
        "q": q, "number": number, "intent": intent, "outcome": outcome,
        "since": _when(since, "since"), "until": _when(until, "until"), "min_frustration": min_frustration,
        "qa": [_qa_item(item) for item in qa or []], "tag": tag,
        "limit": max(1, min(limit, MAX_PAGE)), "offset": max(0, offset),
    }
    if not who.sees_all:
        own = await asyncio.to_thread(own_call_ids, request, who) or set()
        filters["agent_id"] = who.agent_id or ""
        filters["agent_calls"] = own | {c.id for c in _live(request).calls.values() if c.agent_id == who.agent_id}
    rows, total = await asyncio.to_thread(lambda: _runtime(request).store.search(**filters))
    response.headers["X-Total-Count"] = str(total)
    redactor = _redactor(request)
    return [redactor.call(r) for r in rows]


def _qa_item(item: str) -> str:
    """``name=result`` of a scorecard filter, or 400 naming the form."""
    name, sep, result = item.partition("=")
    if not sep or not name.strip() or not result.strip():
        raise HTTPException(status_code=400, detail=f"qa filter {item!r}: write it as ITEM=RESULT, e.g. "
                            "ai_disclosure=fail or containment=pass")
    return f"{name.strip()}={result.strip()}"


@router.get("/api/calls/export")
async def export_calls(
    request: Request,
    who: LoggedIn,
    format: str = "csv",
    kind: str = "calls",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
) -> Response:
    """Calls that started in ``[from, to)`` (ISO 8601; default the last 7 days) for a spreadsheet or a BI tool.

    ``format=json``: one object with ``calls`` (each with its turns, scorecard and notes), streamed.
    ``format=csv`` with ``kind``: ``calls`` (one row per call, scorecard results as columns), ``turns`` (one row
    per turn) or ``scorecards`` (one row per scorecard item). Text is redacted as everywhere; agents get only
    the calls handed to them. Each export is written to the audit log.
    """
    from voicebot.qa.export import CSV_KINDS, csv_rows, json_chunks

    if format not in ("csv", "json"):
        raise HTTPException(status_code=400, detail="format must be csv or json")
    if format == "csv" and kind not in CSV_KINDS:
        raise HTTPException(status_code=400, detail=f"kind must be one of {', '.join(CSV_KINDS)}")
    end = _when(to, "to") or datetime.now(UTC)
    start = _when(from_, "from") or end - timedelta(days=7)
    if start >= end:
        raise HTTPException(status_code=400, detail="from must be before to")
    scope: dict[str, Any] = {}
    if not who.sees_all:
        own = await asyncio.to_thread(own_call_ids, request, who) or set()
        scope = {"agent_id": who.agent_id or "", "agent_calls": own}
    store = _runtime(request).store
    redactor = _redactor(request)
    await asyncio.to_thread(request.app.state.users.audit, who.username, f"export_{format}_{kind}",
                            f"{start.isoformat()}/{end.isoformat()}")
    calls = (redactor.call(c) for c in store.export(start, end, **scope))
    stamp = f"{start:%Y%m%d}-{end:%Y%m%d}"
    if format == "json":
        body = _in_thread(json_chunks(calls))
        media, name = "application/json", f"calls-{stamp}.json"
    else:
        body = _in_thread(csv_rows(kind, calls))
        media, name = "text/csv; charset=utf-8", f"{kind}-{stamp}.csv"
    return StreamingResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _in_thread(chunks: Any) -> Any:
    """Pull a blocking iterator (database reads) in a worker thread, chunk by chunk."""
    done = object()
    while True:
        chunk = await asyncio.to_thread(next, chunks, done)
        if chunk is done:
            return
        yield chunk


@router.post("/api/calls/{call_id}/notes")
async def add_note(call_id: str, request: Request, who: Staff) -> dict[str, Any]:
    """Add a reviewer's note and tags to a call: ``{"note": "...", "tags": ["coaching"]}``."""
    from voicebot.server.request_body import json_object

    body = await json_object(request)
    note = body.get("note", "")
    tags = body.get("tags", [])
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise HTTPException(status_code=400, detail=f"note must be text of at most {MAX_NOTE} characters")
    if not isinstance(tags, list) or len(tags) > MAX_TAGS or not all(
            isinstance(t, str) and 0 < len(t.strip()) <= 40 for t in tags):
        raise HTTPException(status_code=400, detail=f"tags must be a list of at most {MAX_TAGS} words of 1-40 "
                            "characters")
    if not note.strip() and not tags:
        raise HTTPException(status_code=400, detail="give a note or at least one tag")
    row = await asyncio.to_thread(_runtime(request).store.add_note, call_id, who.username, note.strip(),
                                  [t.strip().lower() for t in tags])
    if row is None:
        raise HTTPException(status_code=404, detail=f"no call {call_id}")
    await asyncio.to_thread(request.app.state.users.audit, who.username, "note_call", call_id)
    return row


def _analytics(request: Request) -> Any:
    from voicebot.qa.analytics import Analytics

    runtime = _runtime(request)
    limits = {q.name: q.service_level_s for q in runtime.settings.queues}
    return Analytics(runtime.store.engine, limits)


def _span(from_: str | None, to: str | None, default: timedelta) -> tuple[datetime, datetime]:
    end = _when(to, "to") or datetime.now(UTC)
    start = _when(from_, "from") or end - default
    if start >= end:
        raise HTTPException(status_code=400, detail="from must be before to")
    if end - start > timedelta(days=MAX_ANALYTICS_DAYS):
        raise HTTPException(status_code=400, detail=f"at most {MAX_ANALYTICS_DAYS} days at once")
    return start, end


@router.get("/api/analytics")
async def analytics(
    request: Request,
    _who: Staff,
    bucket: str = "day",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
) -> dict[str, Any]:
    """Trends of the calls started in ``[from, to)`` (default: the last 7 days) per ``bucket`` (hour, day, week):
    calls, containment, handle time, abandon rate, transfers, speed of answer, service level, frustration; per
    intent (containment rate) and per agent. Definitions: voicebot.qa.analytics."""
    from voicebot.qa.analytics import BUCKETS

    if bucket not in BUCKETS:
        raise HTTPException(status_code=400, detail=f"bucket must be one of {', '.join(BUCKETS)}")
    start, end = _span(from_, to, timedelta(days=7))
    figures = _analytics(request)
    trends = await asyncio.to_thread(figures.trends, start, end, bucket)
    trends["agents"] = await asyncio.to_thread(figures.agents, start, end)
    return trends


@router.get("/api/analytics/agents")
async def analytics_agents(
    request: Request,
    who: LoggedIn,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
) -> dict[str, Any]:
    """Per-agent figures of ``[from, to)`` (default the last 7 days); an agent gets only their own row."""
    start, end = _span(from_, to, timedelta(days=7))
    only = None if who.sees_all else (who.agent_id or "")
    rows = await asyncio.to_thread(_analytics(request).agents, start, end, only)
    return {"since": start.isoformat(), "until": end.isoformat(), "agents": rows}


@router.get("/api/stats")
async def stats(request: Request, _who: Staff, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """Figures of the calls started in ``[since, until)`` (default: the last 24 hours) for the plots."""
    end = _when(until, "until") or datetime.now(UTC)
    start = _when(since, "since") or end - timedelta(hours=DEFAULT_STATS_HOURS)
    if start >= end:
        raise HTTPException(status_code=400, detail="since must be before until")
    return await asyncio.to_thread(_runtime(request).store.stats, start, end)
