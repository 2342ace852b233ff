"""The HTTP server: caller page, WebRTC signaling (pipecat SmallWebRTC format), call records, metrics."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from voicebot import metrics
from voicebot.config import HttpConfig, WebRTCConfig
from voicebot.redaction import Redactor
from voicebot.runtime import Runtime
from voicebot.server.access import LoggedIn, call_key, check_call_key, ensure_can_see_call, require
from voicebot.server.agent_phone import AgentPhones
from voicebot.server.agents import router as agents_router
from voicebot.server.aiortc_tuning import AiortcInternalsChanged, low_latency_audio_in
from voicebot.server.alerts import alert_book
from voicebot.server.alerts import router as alerts_router
from voicebot.server.auth_routes import router as auth_router
from voicebot.server.browser_call import BrowserCall
from voicebot.server.caller_token import CallerTokenError, secret_from_env
from voicebot.server.caller_token import verify as verify_caller_token
from voicebot.server.http_guard import HttpGuard, install_log_filter
from voicebot.server.listen import router as listen_router
from voicebot.server.recordings import router as recordings_router
from voicebot.server.request_body import json_value
from voicebot.server.sdp_offer import UnusableOffer
from voicebot.server.supervisor import live_calls
from voicebot.server.supervisor import router as supervisor_router
from voicebot.users import UserStore

if TYPE_CHECKING:
    from voicebot.cluster.redis_state import ClusterState
    from voicebot.live import LiveCalls
    from voicebot.transfer import TransferService

log = logging.getLogger(__name__)

STATIC_DIR = files("voicebot.server").joinpath("static")
_unsigned_warned = False  # an unsigned caller_id is logged once per process, not once per call


def _bad(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def _parse_offer(body: Any, caller_secret: bytes | None) -> tuple[SmallWebRTCRequest, str | None]:
    """Validate a signaling offer; raises a 400 naming what is wrong. The caller ID is the one a valid
    ``request_data.caller_token`` signed with ``caller_secret`` names; without one the caller is anonymous."""
    global _unsigned_warned
    if not isinstance(body, dict):
        raise _bad('the offer must be a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = body.get("sdp"), body.get("type")
    if not isinstance(sdp, str) or not sdp.strip():
        raise _bad('"sdp" must be a non-empty SDP string')
    if kind != "offer":
        raise _bad(f'"type" must be "offer", not {kind!r}')
    if not sdp.lstrip().startswith("v=0") or "m=audio" not in sdp:
        raise _bad('"sdp" is not an SDP offer with an audio section (it must start with "v=0")')
    pc_id = body.get("pc_id")
    if pc_id is not None and not isinstance(pc_id, str):
        raise _bad('"pc_id" must be a string')
    data = body.get("request_data", body.get("requestData")) or {}
    if not isinstance(data, dict):
        raise _bad('"request_data" must be a JSON object')
    token = data.get("caller_token")
    caller_id = None
    if token is not None:
        if caller_secret is None:
            raise _bad("this server does not accept caller tokens (webrtc.caller_token_secret_env is not set up)")
        try:
            caller_id = verify_caller_token(token, caller_secret)
        except CallerTokenError as exc:
            raise _bad(f'"request_data.caller_token": {exc}') from None
    elif data.get("caller_id") is not None and not _unsigned_warned:
        # Anyone can claim any number from a browser: only a number the company's site signed is believed.
        log.warning("browser offer with an unsigned request_data.caller_id: ignored, the caller is anonymous "
                    "(a caller ID needs request_data.caller_token; logged once)")
        _unsigned_warned = True
    request = SmallWebRTCRequest(sdp=sdp, type=kind, pc_id=pc_id, restart_pc=bool(body.get("restart_pc")))
    return request, caller_id


def _parse_patch(body: Any) -> SmallWebRTCPatchRequest:
    if not isinstance(body, dict) or not isinstance(body.get("pc_id"), str):
        raise _bad('the patch must be a JSON object {"pc_id": ..., "candidates": [...]}')
    raw = body.get("candidates")
    if not isinstance(raw, list):
        raise _bad('"candidates" must be a list')
    candidates = []
    shape = 'each candidate must be {"candidate": str, "sdp_mid": str, "sdp_mline_index": int}'
    for c in raw:
        if not isinstance(c, dict):
            raise _bad(shape)
        candidate = c.get("candidate", "")
        mid = c.get("sdp_mid", c.get("sdpMid"))
        index = c.get("sdp_mline_index", c.get("sdpMLineIndex"))
        if not isinstance(candidate, str) or not isinstance(mid, str) or not isinstance(index, int):
            raise _bad(shape)
        candidates.append(IceCandidate(candidate=candidate, sdp_mid=mid, sdp_mline_index=index))
    return SmallWebRTCPatchRequest(pc_id=body["pc_id"], candidates=candidates)


async def _json(request: Request) -> Any:
    return await json_value(request)


PURGE_EVERY_S = 24 * 3600


async def _purge_daily(runtime: Runtime) -> None:
    """The retention purge (``voicebot gdpr purge``) at start and then once a day, off the event loop."""
    from voicebot.storage.retention import purge_all

    days = runtime.settings.memory.contact_retention_days
    while True:
        try:
            contacts, calls = await asyncio.to_thread(purge_all, runtime.engine.database, days,
                                                      runtime.settings.recording.retention_days)
            if contacts or calls:
                log.info("retention: erased %d contact(s) and %d call record(s) older than %d days",
                         contacts, calls, days)
        except Exception:  # a locked or unreachable database: try again tomorrow, the calls go on
            log.exception("retention purge failed")
        await asyncio.sleep(PURGE_EVERY_S)


def _cluster_state(runtime: Runtime, live: LiveCalls) -> ClusterState | None:
    """What this node shares with the others through Redis (``cluster.redis_url``), or None on a single node."""
    cluster = runtime.settings.cluster
    if not cluster.redis_url:
        return None
    from voicebot.cluster.redis_state import ClusterState

    return ClusterState(runtime.events, runtime.store, cluster.redis_url, cluster.node_id,
                        heartbeat_s=cluster.heartbeat_s, lost_after_s=cluster.node_lost_after_s, live=live)


def create_app(runtime: Runtime, transfer: TransferService | None = None) -> FastAPI:
    """The FastAPI app serving calls with ``runtime``'s engine and models (loaded by the caller);
    ``transfer`` (the agent queue) adds the agent page and the queue and agent API."""
    handler = SmallWebRTCRequestHandler()
    calls: dict[str, asyncio.Task] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime.events.bind()
        app.state.live.start()
        cluster = _cluster_state(runtime, app.state.live)
        if cluster is not None:
            await cluster.start()
            if transfer is not None:
                transfer.claims = cluster.agents  # before its ACD starts: agents are rung by one node at a time
                transfer.entries = cluster.queue  # and callers served in one order over the nodes
                from voicebot.cluster.pages import share_pages

                share_pages(runtime.settings, cluster, phones, transfer)  # agent pages rung from any node
        if transfer is not None:
            await transfer.start()
            if cluster is not None and transfer.runner is not None:
                cluster.queue_changes.add_sink(transfer.runner.recheck)  # another node freed an agent: offer now
        purger = asyncio.create_task(_purge_daily(runtime), name="retention-purge") \
            if runtime.settings.privacy.purge_daily else None
        yield
        if purger is not None:
            purger.cancel()
        if transfer is not None:
            await transfer.close()
        await phones.close()
        # Shutting down: every call ends now and its record is closed by its own task.
        for task in list(calls.values()):
            task.cancel()
        await asyncio.gather(*calls.values(), return_exceptions=True)
        await handler.close()
        if cluster is not None:
            await cluster.close()
        await app.state.live.stop()
        app.state.alerts.close()

    # No /docs or /redoc (their pages load scripts from a CDN); the API description is for logged-in users.
    app = FastAPI(title="voicebot", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    http_settings = getattr(runtime.settings, "http", None) or HttpConfig()
    app.add_middleware(HttpGuard, settings=http_settings)
    install_log_filter()
    app.state.runtime = runtime
    app.state.calls = calls
    app.state.transfer = transfer
    phones = app.state.phones = AgentPhones()  # agent pages connected as phones (contact: webrtc)
    if transfer is not None:
        transfer.use_phones(phones)
    app.state.users = UserStore(runtime.engine.database.engine,
                                session_hours=getattr(getattr(runtime.settings, "auth", None), "session_hours", 12.0))
    if not app.state.users.list():
        log.warning("no users yet: the agent page, the dashboard and the call APIs need a login; "
                    "create one with `voicebot users add NAME --role admin`")
    app.include_router(auth_router)
    try:
        webrtc_settings = getattr(runtime.settings, "webrtc", None)
        caller_secret = secret_from_env(getattr(webrtc_settings, "caller_token_secret_env", None))
    except CallerTokenError as exc:
        log.error("%s: browser callers' caller tokens are refused until it is set", exc)
        caller_secret = None
    redactor = Redactor.from_settings(runtime.settings)  # also for rows stored before redaction was on
    app.include_router(agents_router)
    app.state.live = live_calls(runtime)  # the live calls of the dashboard, fed by runtime.events
    app.include_router(supervisor_router)
    alert_book(app, runtime.engine.database.engine, runtime.events)  # alerts kept, acknowledged and assigned
    app.include_router(alerts_router)
    app.include_router(listen_router)
    app.include_router(recordings_router)

    async def start_call(connection: SmallWebRTCConnection, caller_id: str | None) -> None:
        try:
            low_latency_audio_in(connection.pc)
        except AiortcInternalsChanged as exc:  # the call still works, 60 ms slower to answer
            log.error("%s", exc)
        transport = SmallWebRTCTransport(
            connection,
            # 20 ms output chunks (default 40 ms): less audio queued ahead of a barge-in, earlier first audio.
            # No end silence: at 22050 Hz pipecat's makes a buffer that is not whole 10 ms and its track refuses it.
            TransportParams(audio_in_enabled=True, audio_out_enabled=True, audio_out_10ms_chunks=2,
                            audio_out_end_silence_secs=0),
        )
        session = runtime.engine.new_call(channel="webrtc", caller_id=caller_id, call_id=connection.pc_id)
        browser = BrowserCall(runtime, session, transport, connection.pc_id, caller_id, transfer)
        task = asyncio.create_task(browser.run(), name=f"call-{connection.pc_id}")
        calls[connection.pc_id] = task
        task.add_done_callback(lambda _t: calls.pop(connection.pc_id, None))

    @app.get("/", include_in_schema=False)
    async def caller_page() -> FileResponse:
        return FileResponse(str(STATIC_DIR.joinpath("index.html")))

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    def _own_call(request: Request, pc_id: str) -> None:
        # Renegotiating or adding ICE candidates to an existing connection would let whoever knows a call's id
        # take over its audio: only the caller, with the key their first answer gave them, may.
        if not check_call_key(app, pc_id, request.headers.get("x-call-key")):
            raise HTTPException(status_code=403, detail="changing a call's connection needs its X-Call-Key")

    max_browser_calls = (getattr(runtime.settings, "webrtc", None) or WebRTCConfig()).max_calls
    opening: set[int] = set()  # offers being answered now: counted with the calls against webrtc.max_calls

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(_who: LoggedIn) -> dict[str, Any]:
        return app.openapi()

    @app.post("/api/offer")
    async def offer(request: Request) -> dict[str, Any]:
        """SmallWebRTC signaling: ``{"sdp", "type"}`` in, ``{"sdp", "type", "pc_id", "call_key"}`` out
        (``call_key``: for a new call, opens its record to the caller: ``X-Call-Key``)."""
        webrtc_request, caller_id = _parse_offer(await _json(request), caller_secret)
        if webrtc_request.pc_id:
            _own_call(request, webrtc_request.pc_id)
        elif len(calls) + len(opening) >= max_browser_calls:
            raise HTTPException(status_code=503, headers={"Retry-After": "30"},
                                detail=f"all {max_browser_calls} lines for browser callers are busy: "
                                       "please try again in a minute")
        started: list[str] = []
        ticket = id(started)
        opening.add(ticket)

        async def on_connection(connection: SmallWebRTCConnection) -> None:
            started.append(connection.pc_id)
            await start_call(connection, caller_id)

        try:
            answer = await handler.handle_web_request(webrtc_request, on_connection)
        except HTTPException:
            raise
        except Exception as exc:  # pipecat's handler passes on aiortc's assorted errors for SDP it cannot use
            raise _bad(str(UnusableOffer(exc))) from None
        finally:
            opening.discard(ticket)
        if answer is None:
            raise _bad("the offer produced no answer")
        if started:  # only a new call: a renegotiation of an existing pc_id must not hand out its key
            answer["call_key"] = call_key(app, started[0])
        return answer

    @app.patch("/api/offer")
    async def ice_candidates(request: Request) -> dict[str, str]:
        """Trickle ICE: add the caller's candidates to an existing connection."""
        patch = _parse_patch(await _json(request))
        _own_call(request, patch.pc_id)
        try:
            await handler.handle_patch_request(patch)
        except HTTPException:
            raise
        except Exception as exc:
            raise _bad(f"cannot use these ICE candidates: {exc}") from None
        return {"status": "success"}

    # GET /api/calls (history search) is the supervisor router's.

    @app.get("/api/calls/{call_id}")
    async def get_call(call_id: str, request: Request) -> dict[str, Any]:
        """One call with its turns (redacted). Staff and the agent it was handed to (opening it is written to
        the audit log), or the caller themselves with the ``X-Call-Key`` their call's answer gave them."""
        if not check_call_key(app, call_id, request.headers.get("x-call-key")):
            who = await require()(request)
            await ensure_can_see_call(app, who, call_id)
            await asyncio.to_thread(app.state.users.audit, who.username, "open_call", call_id)
        record = await asyncio.to_thread(runtime.store.get, call_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no call {call_id}")
        if transfer is not None:
            # A call handed to the agent queue: which agent took it, after how long.
            handed = await asyncio.to_thread(transfer.records.of_call, call_id)
            record["agent_id"] = handed["agent_id"] if handed else None
            record["transfer"] = handed
        return redactor.call(record)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(content=body, media_type=content_type)

    @app.get("/healthz", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "calls": len(calls)})

    return app
