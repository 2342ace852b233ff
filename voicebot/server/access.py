"""Who a request speaks for, and what they may see: the access checks every router uses.

Roles: ``admin`` (everything), ``supervisor`` (all calls, dashboard, queues), ``agent`` (the agent page and
their own calls: those handed to their ``agent_id``). A token comes as ``Authorization: Bearer TOKEN`` or in
the ``voicebot_session`` cookie (the pages), and for websockets also as the subprotocol ``voicebot.bearer.TOKEN``
(offered with ``voicebot``, which the server answers) or, kept for old clients, ``?token=`` (hidden in the
logs, but it stays in proxies' and browsers' histories: prefer the subprotocol). The anonymous caller
opens their own call's record with its call key (``X-Call-Key``). Failed logins are throttled here too.
The login, logout and user routes are in ``voicebot.server.auth_routes``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any, Protocol
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection

from voicebot.config import AuthConfig
from voicebot.users import ROLES, User, UserStore

COOKIE = "voicebot_session"
WS_PROTOCOL = "voicebot"  # the websocket subprotocol the server answers when the client offers it
WS_BEARER_PREFIX = "voicebot.bearer."  # a websocket subprotocol carrying the session token
LOGIN_REQUIRED = "login required"
STATIC_DIR = files("voicebot.server").joinpath("static")


@dataclass(frozen=True)
class Principal:
    """The logged-in user a request speaks for."""

    username: str
    role: str
    agent_id: str | None

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.username, user.role, user.agent_id)

    @property
    def sees_all(self) -> bool:
        """Admins and supervisors see every call; agents only their own."""
        return self.role in ("admin", "supervisor")


def users_of(app: FastAPI) -> UserStore:
    """The app's user store (``app.state.users``); a 503 if the app has none (a misconfigured test app)."""
    users = getattr(app.state, "users", None)
    if users is None:
        raise HTTPException(status_code=503, detail="no user store configured")
    return users


def token_of(conn: HTTPConnection, *, allow_query: bool = False) -> str | None:
    """The session token of a request or websocket: Bearer header, then cookie, then (websockets) ``?token=``."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    cookie = conn.cookies.get(COOKIE)
    if cookie:
        return cookie
    if allow_query:
        for protocol in ws_protocols(conn):
            if protocol.startswith(WS_BEARER_PREFIX) and len(protocol) > len(WS_BEARER_PREFIX):
                return protocol[len(WS_BEARER_PREFIX):]
        return conn.query_params.get("token") or None
    return None


def ws_protocols(conn: HTTPConnection) -> list[str]:
    """The subprotocols a websocket client offered (``Sec-WebSocket-Protocol``), in its order."""
    offered = ",".join(conn.headers.getlist("sec-websocket-protocol"))
    return [p.strip() for p in offered.split(",") if p.strip()]


async def principal_of(conn: HTTPConnection, *, allow_query: bool = False) -> Principal | None:
    """The logged-in user of a request or websocket, or None (no, unknown or expired token)."""
    token = token_of(conn, allow_query=allow_query)
    if token is None:
        return None
    users = getattr(conn.app.state, "users", None)
    if users is None:
        return None
    user = await asyncio.to_thread(users.session_user, token)
    return None if user is None else Principal.of(user)


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the logged-in ``Principal``, 401 ``login required`` without a valid session,
    403 when their role is not one of ``roles`` (no roles: any logged-in user)."""
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")

    async def dependency(request: Request) -> Principal:
        principal = await principal_of(request)
        if principal is None:
            raise HTTPException(status_code=401, detail=LOGIN_REQUIRED, headers={"WWW-Authenticate": "Bearer"})
        if roles and principal.role not in roles:
            raise HTTPException(status_code=403, detail=f"this needs the role {' or '.join(roles)}")
        return principal

    return dependency


# Route parameter types (ruff B008-clean): ``async def route(who: LoggedIn)``.
LoggedIn = Annotated[Principal, Depends(require())]
Staff = Annotated[Principal, Depends(require("admin", "supervisor"))]
Admin = Annotated[Principal, Depends(require("admin"))]


async def websocket_principal(ws: WebSocket) -> Principal | None:
    """The logged-in user of a websocket (Bearer header, cookie, ``voicebot.bearer.TOKEN`` subprotocol or
    ``?token=``), or None: then close with 4401."""
    return await principal_of(ws, allow_query=True)


def _app_of(request_or_app: Any) -> FastAPI:
    return request_or_app if isinstance(request_or_app, FastAPI) else request_or_app.app


def agent_call_ids(app: FastAPI, agent_id: str) -> set[str]:
    """Calls an agent holds or is being offered right now (from the live queue), possibly empty."""
    service = getattr(app.state, "transfer", None)
    runner = getattr(service, "runner", None) if service is not None else None
    if runner is None:
        return set()
    for _attempt in range(3):
        try:
            agents = runner.acd.agents()
        except RuntimeError:  # read from a worker thread while the loop changed the queue: read again
            continue
        return next((agent.call_ids() for agent in agents if agent.id == agent_id), set())
    return set()


def own_call_ids(request_or_app: Any, principal: Principal) -> set[str] | None:
    """The ids of the calls ``principal`` may see: None for all (admins, supervisors), else an agent's calls
    (held or offered now, or recorded as handed to them). Sync; queries the database."""
    if principal.sees_all:
        return None
    if principal.role != "agent" or not principal.agent_id:
        return set()
    app = _app_of(request_or_app)
    ids = agent_call_ids(app, principal.agent_id)
    service = getattr(app.state, "transfer", None)
    if service is not None:
        ids |= service.records.call_ids_of_agent(principal.agent_id)
    return ids


def can_see_call(request_or_app: Any, principal: Principal, call_id: str) -> bool:
    """May ``principal`` see call ``call_id``? Admins and supervisors: yes. Agents: only a call handed to
    their agent id (taken now, offered now, or recorded as taken). Sync; may query the database."""
    if principal.sees_all:
        return True
    if principal.role != "agent" or not principal.agent_id:
        return False
    app = _app_of(request_or_app)
    if call_id in agent_call_ids(app, principal.agent_id):
        return True
    store = getattr(getattr(app.state, "runtime", None), "store", None)
    if store is not None:  # the call record notes the agent who took the call
        from sqlalchemy.orm import Session

        from voicebot.storage.models import CallRow

        with Session(store.engine) as s:
            row = s.get(CallRow, call_id)
            if row is not None and row.agent_id == principal.agent_id:
                return True
    service = getattr(app.state, "transfer", None)
    if service is None:
        return False
    handed = service.records.of_call(call_id)
    return bool(handed) and handed.get("agent_id") == principal.agent_id


async def ensure_can_see_call(request: Request | FastAPI, principal: Principal, call_id: str) -> None:
    """404 (not 403: do not confirm that the call exists) unless ``principal`` may see the call."""
    if principal.sees_all:
        return
    if principal.agent_id and call_id in agent_call_ids(_app_of(request), principal.agent_id):
        return  # read on the loop, where the queue lives
    if not await asyncio.to_thread(can_see_call, request, principal, call_id):
        raise HTTPException(status_code=404, detail=f"no call {call_id}")


def ensure_own_agent(principal: Principal, agent_id: str) -> None:
    """403 unless the principal is staff (admin/supervisor) or the agent ``agent_id`` themselves."""
    if not principal.sees_all and principal.agent_id != agent_id:
        raise HTTPException(status_code=403, detail="an agent may only act as themselves")


# Pages behind a login are never cached: after logging out, Back must not show a stored copy.
NO_STORE = {"Cache-Control": "no-store"}


async def page_or_login(request: Request, page: str, *roles: str) -> Response:
    """Serve static ``page`` to a logged-in user with one of ``roles``; without a session redirect to the
    login form (and back here after it); a user of another role gets a 403 page saying whose page it is."""
    principal = await principal_of(request)
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303, headers=NO_STORE)
    if roles and principal.role not in roles:
        return HTMLResponse(
            f"<!doctype html><title>voicebot</title><p>This page is for the role {' or '.join(roles)}; you are "
            f"logged in as {html.escape(principal.username)} ({principal.role}). "
            f'<a href="/login?next={quote(request.url.path, safe="")}">Log in as someone else</a></p>',
            status_code=403, headers=NO_STORE)
    file = STATIC_DIR.joinpath(page)
    if not file.is_file():
        raise HTTPException(status_code=404, detail=f"{page} is not installed")
    return FileResponse(str(file), headers=NO_STORE)


# the anonymous caller's key to their own call


def call_key(app: FastAPI, call_id: str) -> str:
    """A key that opens call ``call_id``'s record (``X-Call-Key``) without a login: given to the caller
    page with its SDP answer so the caller sees their own live transcript. Valid until the process ends."""
    secret = getattr(app.state, "call_key_secret", None)
    if secret is None:
        secret = app.state.call_key_secret = secrets.token_bytes(32)
    return hmac.new(secret, call_id.encode(), hashlib.sha256).hexdigest()


def check_call_key(app: FastAPI, call_id: str, key: str | None) -> bool:
    """True when ``key`` is the caller's key to ``call_id`` (constant-time compare)."""
    if not key or getattr(app.state, "call_key_secret", None) is None:
        return False
    return hmac.compare_digest(call_key(app, call_id), key)


# throttling of failed logins


class FailureLog(Protocol):
    """Where a :class:`LoginThrottle` keeps failed attempts and the addresses users log in from: in this process
    (:class:`MemoryFailureLog`) or shared by a cluster's nodes (``voicebot.cluster.redis_state.RedisFailureLog``)."""

    def add(self, keys: Sequence[str], at: float, window_s: float) -> None:
        """Note a failure at ``at`` under each key (forgettable ``window_s`` later)."""

    def recent(self, key: str, since: float) -> list[float]:
        """The times of ``key``'s failures after ``since``, oldest first."""

    def forget(self, key: str) -> None:
        """Drop ``key``'s failures."""

    def known(self, user: str) -> Collection[str]:
        """The addresses ``user`` logged in from lately."""

    def remember(self, user: str, address: str, keep: int) -> None:
        """Add ``address`` to ``user``'s known addresses, keeping the newest ``keep``."""


class MemoryFailureLog:
    """The failure log of one process: it does not survive a restart, nor reach other nodes."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._known: dict[str, deque[str]] = {}
        self._lock = threading.Lock()

    def add(self, keys: Sequence[str], at: float, window_s: float) -> None:
        with self._lock:
            for key in keys:
                times = self._failures.setdefault(key, deque())
                while times and times[0] <= at - window_s:
                    times.popleft()
                times.append(at)

    def recent(self, key: str, since: float) -> list[float]:
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                return []
            while times and times[0] <= since:
                times.popleft()
            if not times:
                del self._failures[key]
            return list(times)

    def forget(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def known(self, user: str) -> Collection[str]:
        with self._lock:
            return tuple(self._known.get(user, ()))

    def remember(self, user: str, address: str, keep: int) -> None:
        with self._lock:
            known = self._known.setdefault(user, deque(maxlen=keep))
            if address not in known:
                known.append(address)


class LoginThrottle:
    """At most ``limit`` failed attempts per minute per key (``retry_after`` / ``failed``).

    For logins (``login_wait`` / ``login_failed`` / ``login_succeeded``): ``limit`` per client address and per
    user from one address, and ``user_limit`` per user from all addresses together, which holds back only
    addresses that already failed as that user and that user has not logged in from: a stranger's wrong
    passwords never lock a user out (a first attempt, and any from where they logged in before, always counts).
    The counts live in ``log``: in memory by default (per process, gone at a restart), in Redis in a cluster
    (every node counts the same attempts; its ``clock`` must then be wall-clock time).
    """

    WINDOW_S = 60.0
    KNOWN_PER_USER = 16  # addresses remembered per user (the newest)

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic, user_limit: int | None = None,
                 log: FailureLog | None = None):
        self.limit = limit
        self.user_limit = limit * 4 if user_limit is None else user_limit
        self.clock = clock
        self.log: FailureLog = log if log is not None else MemoryFailureLog()

    def login_wait(self, username: str, address: str) -> int:
        """Seconds until ``username`` may try to log in from ``address`` again (0: now)."""
        user = username.strip().lower()
        pair = f"pair:{user}@{address}"
        wait = self.retry_after(f"addr:{address}", pair)
        known = address in self.log.known(user)
        failed_here = bool(self.log.recent(pair, self.clock() - self.WINDOW_S))
        # A first attempt from anywhere is never held back by the user-wide count, which strangers can drive up.
        if failed_here and not known:
            wait = max(wait, self._wait(f"user:{user}", self.user_limit))
        return wait

    def login_failed(self, username: str, address: str) -> None:
        user = username.strip().lower()
        self.failed(f"addr:{address}", f"pair:{user}@{address}", f"user:{user}")

    def login_succeeded(self, username: str, address: str) -> None:
        """Remember ``address`` as one ``username`` logs in from; its failed attempts as that user are forgotten."""
        user = username.strip().lower()
        self.log.remember(user, address, self.KNOWN_PER_USER)
        self.log.forget(f"pair:{user}@{address}")

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed for all ``keys`` (0: allowed now)."""
        return max((self._wait(key, self.limit) for key in keys), default=0)

    def _wait(self, key: str, limit: int) -> int:
        if limit <= 0:
            return 0
        now = self.clock()
        times = self.log.recent(key, now - self.WINDOW_S)
        wait = times[-limit] + self.WINDOW_S - now if len(times) >= limit else 0.0
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        """Note a failed attempt under each of ``keys``."""
        self.log.add(keys, self.clock(), self.WINDOW_S)


def auth_settings(app: FastAPI) -> AuthConfig | None:
    """The ``auth`` section of the app's settings, or None (a test app without a runtime)."""
    runtime = getattr(app.state, "runtime", None)
    return getattr(getattr(runtime, "settings", None), "auth", None)


def throttle_of(app: FastAPI) -> LoginThrottle:
    """The app's failed-login throttle, made on first use with the configured ``auth.max_failed_logins``."""
    throttle = getattr(app.state, "login_throttle", None)
    if throttle is None:
        settings = auth_settings(app)
        limit = settings.max_failed_logins if settings is not None else 5
        user_limit = settings.max_failed_logins_per_user if settings is not None else None
        cluster = getattr(getattr(getattr(app.state, "runtime", None), "settings", None), "cluster", None)
        if cluster is not None and cluster.redis_url:
            from voicebot.cluster.redis_state import RedisFailureLog

            # Shared by every node, so a guesser spreading attempts over the nodes is counted once: wall-clock time.
            throttle = LoginThrottle(limit, time.time, user_limit, log=RedisFailureLog(cluster.redis_url))
        else:
            throttle = LoginThrottle(limit, user_limit=user_limit)
        app.state.login_throttle = throttle
    return throttle
