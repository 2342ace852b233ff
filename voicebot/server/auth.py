"""Logins for the staff pages and data APIs: who is asking, and may they see this.

    GET    /login              the login form (then back to ``?next=``)
    GET    /supervisor         the dashboard (admin, supervisor; without a session: redirect to /login)
    POST   /api/login          {"username", "password"} -> {"token", "username", "role", "agent_id", "expires"}
                               and the session cookie; failed logins are throttled (429 + Retry-After)
    POST   /api/logout         end this session
    GET    /api/me             who is logged in
    GET    /api/users          every user (admin)
    POST   /api/users          {"username", "role", "password", "agent_id"?} (admin)
    DELETE /api/users/{name}   (admin)
    POST   /api/users/{name}/password  {"password"} (admin), or {"current", "password"} (the user themselves)
    GET    /api/audit          who opened which call (admin; ?username=&action=&call_id=&limit=&offset=)
    GET    /api/config         the effective configuration, database password hidden (admin)

Roles: ``admin`` (everything), ``supervisor`` (all calls, dashboard, queues), ``agent`` (the agent page and
their own calls: those handed to their ``agent_id``). A token comes as ``Authorization: Bearer TOKEN`` or in
the ``voicebot_session`` cookie (the pages), and for websockets also as ``?token=``.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.requests import HTTPConnection

from voicebot.users import MAX_NAME, ROLES, User, UserError, UserStore

COOKIE = "voicebot_session"
LOGIN_REQUIRED = "login required"
STATIC_DIR = files("voicebot.server").joinpath("static")

router = APIRouter()


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
        return conn.query_params.get("token") or None
    return None


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
    """The logged-in user of a websocket (``?token=``, Bearer header or cookie), or None: then close with 4401."""
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
            snapshot = runner.acd.agents_snapshot()
        except RuntimeError:  # read from a worker thread while the loop changed the queue: read again
            continue
        for agent in snapshot:
            if agent["id"] == agent_id:
                ids = {str(c) for c in agent.get("calls") or []}
                if agent.get("offered_call"):
                    ids.add(str(agent["offered_call"]))
                return ids
        return set()
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
        from sqlalchemy import select

        from voicebot.transfer import TransferRow

        with service.records._sessions() as s:
            ids |= set(s.scalars(select(TransferRow.call_id).where(TransferRow.agent_id == principal.agent_id)))
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


class LoginThrottle:
    """At most ``limit`` failed logins per minute per username and per client address.

    In memory, per process: it slows a password guesser down; it is not meant to survive a restart.
    """

    WINDOW_S = 60.0

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.WINDOW_S:
            times.popleft()
        return times

    def retry_after(self, *keys: str) -> int:
        """Seconds until another attempt is allowed for all ``keys`` (0: allowed now)."""
        if self.limit <= 0:
            return 0
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.limit:
                    wait = max(wait, times[-self.limit] + self.WINDOW_S - now)
                if not times:
                    self._failures.pop(key, None)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)


def _auth_settings(app: FastAPI) -> Any:
    runtime = getattr(app.state, "runtime", None)
    return getattr(getattr(runtime, "settings", None), "auth", None)


def throttle_of(app: FastAPI) -> LoginThrottle:
    throttle = getattr(app.state, "login_throttle", None)
    if throttle is None:
        settings = _auth_settings(app)
        throttle = LoginThrottle(getattr(settings, "max_failed_logins", 5))
        app.state.login_throttle = throttle
    return throttle


# routes


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object; a 400 saying what is wrong otherwise."""
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="the request body must be a JSON object")
    return body


@router.get("/login", include_in_schema=False)
async def login_page() -> FileResponse:
    return FileResponse(str(STATIC_DIR.joinpath("login.html")))


@router.get("/supervisor", include_in_schema=False)
async def supervisor_page(request: Request) -> Response:
    return await page_or_login(request, "supervisor.html", "admin", "supervisor")


@router.post("/api/login")
async def login(request: Request) -> JSONResponse:
    """Check a username and password; on success a session token (also set as the session cookie)."""
    body = await json_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise HTTPException(status_code=400, detail='send {"username": ..., "password": ...}')
    throttle = throttle_of(request.app)
    keys = (f"user:{username.strip().lower()}", f"addr:{request.client.host if request.client else '?'}")
    wait = throttle.retry_after(*keys)
    if wait:
        raise HTTPException(status_code=429, detail=f"too many failed logins: try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    users = users_of(request.app)
    session = await asyncio.to_thread(users.login, username.strip(), password)
    if session is None:
        throttle.failed(*keys)
        # Who tried (as typed, cut short) and from where: repeated failures are worth an administrator's look.
        await asyncio.to_thread(users.audit, username.strip()[:MAX_NAME], "login_failed", None, keys[1][5:])
        raise HTTPException(status_code=401, detail="wrong username or password")
    await asyncio.to_thread(users.audit, session.user.username, "login", None, keys[1][5:])
    out = {"token": session.token, **session.user.as_dict(), "expires": session.expires.isoformat()}
    response = JSONResponse(out)
    # HttpOnly: page scripts never see it; SameSite=Strict: another site cannot make a browser use it.
    secure = bool(getattr(_auth_settings(request.app), "cookie_secure", False))
    max_age = int((session.expires - users.clock()).total_seconds())
    response.set_cookie(COOKIE, session.token, max_age=max_age, httponly=True, samesite="strict", secure=secure,
                        path="/")
    return response


@router.post("/api/logout")
async def logout(request: Request) -> JSONResponse:
    """End the session of this request (cookie or Bearer token); clears the cookie."""
    token = token_of(request)
    users = getattr(request.app.state, "users", None)
    if token and users is not None:
        await asyncio.to_thread(users.logout, token)
    response = JSONResponse({"status": "logged out"})
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/api/me")
async def me(principal: LoggedIn) -> dict[str, Any]:
    return {"username": principal.username, "role": principal.role, "agent_id": principal.agent_id}


@router.get("/api/users")
async def list_users(request: Request, _admin: Admin) -> dict[str, Any]:
    return {"users": await asyncio.to_thread(users_of(request.app).overview)}


@router.post("/api/users", status_code=201)
async def add_user(request: Request, _admin: Admin) -> dict[str, Any]:
    body = await json_object(request)
    username, role, password = body.get("username"), body.get("role"), body.get("password")
    agent_id = body.get("agent_id")
    if not all(isinstance(v, str) for v in (username, role, password)) or (
            agent_id is not None and not isinstance(agent_id, str)):
        raise HTTPException(status_code=400,
                            detail='send {"username": str, "role": str, "password": str, "agent_id": str?}')
    try:
        user = await asyncio.to_thread(users_of(request.app).add, username, role, password, agent_id)
    except UserError as exc:
        status = 409 if "already exists" in str(exc) else 400
        raise HTTPException(status_code=status, detail=str(exc)) from None
    await asyncio.to_thread(users_of(request.app).audit, _admin.username, "user_add", None,
                            f"{user.username} ({user.role})")
    return user.as_dict()


@router.delete("/api/users/{username}")
async def remove_user(username: str, request: Request, principal: Admin) -> dict[str, Any]:
    if username == principal.username:
        raise HTTPException(status_code=400, detail="you cannot remove yourself")
    try:
        await asyncio.to_thread(users_of(request.app).remove, username)
    except UserError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    await asyncio.to_thread(users_of(request.app).audit, principal.username, "user_remove", None, username)
    return {"removed": username}


@router.post("/api/users/{username}/password")
async def change_password(username: str, request: Request, principal: LoggedIn) -> dict[str, Any]:
    """Set ``username``'s password: an admin for anyone with ``{"password"}``; any user for themselves with
    ``{"current", "password"}``. Every other session of that user ends (the one asking keeps theirs)."""
    own = username == principal.username
    if principal.role != "admin" and not own:
        raise HTTPException(status_code=403, detail="only an admin may set another user's password")
    body = await json_object(request)
    password, current = body.get("password"), body.get("current")
    if not isinstance(password, str) or (current is not None and not isinstance(current, str)):
        raise HTTPException(status_code=400, detail='send {"password": str} (your own: also "current": str)')
    users = users_of(request.app)
    if principal.role != "admin":
        # A stolen session must not be enough to lock its owner out: prove the current password, throttled
        # like a login.
        throttle, key = throttle_of(request.app), f"user:{username.lower()}"
        wait = throttle.retry_after(key)
        if wait:
            raise HTTPException(status_code=429, detail=f"too many wrong passwords: try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        if not current or await asyncio.to_thread(users.check_password, username, current) is None:
            throttle.failed(key)
            await asyncio.to_thread(users.audit, principal.username, "password_failed", None, username)
            raise HTTPException(status_code=403, detail="the current password is wrong")
    try:
        await asyncio.to_thread(users.set_password, username, password, token_of(request) if own else None)
    except UserError as exc:
        raise HTTPException(status_code=404 if str(exc).startswith("no user") else 400, detail=str(exc)) from None
    await asyncio.to_thread(users.audit, principal.username, "password_set", None, username)
    return {"password_changed": username}


@router.get("/api/config")
async def effective_config(request: Request, _admin: Admin) -> dict[str, Any]:
    """The configuration the server runs with (file + environment + defaults), as ``voicebot config show``
    prints it; the database password is hidden (other secrets are only named in the file: ``*_env``)."""
    settings = getattr(getattr(request.app.state, "runtime", None), "settings", None)
    if settings is None or not hasattr(settings, "model_dump"):
        raise HTTPException(status_code=404, detail="no configuration loaded")
    from dialogs.db.engine import safe_url

    out = settings.model_dump(mode="json")
    out["database"]["url"] = safe_url(settings.database.url)
    return out


@router.get("/api/audit")
async def audit_log(request: Request, _admin: Admin, username: str | None = None, call_id: str | None = None,
                    action: str | None = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    rows = await asyncio.to_thread(users_of(request.app).audit_log, max(1, min(limit, 1000)), max(0, offset),
                                   username, call_id, action)
    return {"audit": rows}
