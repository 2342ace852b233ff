"""Logins for the staff pages and data APIs, and the administration of users.

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

Who may do what is decided in ``voicebot.server.access``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from voicebot.server.access import (
    COOKIE,
    STATIC_DIR,
    Admin,
    LoggedIn,
    auth_settings,
    page_or_login,
    throttle_of,
    token_of,
    users_of,
)
from voicebot.server.request_body import json_object
from voicebot.users import MAX_NAME, UserError

router = APIRouter()


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
    # The connection's address; behind a proxy listed in http.trusted_proxies uvicorn puts the forwarded one here.
    address = request.client.host if request.client else "?"
    wait = throttle.login_wait(username, address)
    if wait:
        raise HTTPException(status_code=429, detail=f"too many failed logins: try again in {wait} s",
                            headers={"Retry-After": str(wait)})
    users = users_of(request.app)
    session = await asyncio.to_thread(users.login, username.strip(), password)
    if session is None:
        throttle.login_failed(username, address)
        # Who tried (as typed, cut short) and from where: repeated failures are worth an administrator's look.
        await asyncio.to_thread(users.audit, username.strip()[:MAX_NAME], "login_failed", None, address)
        raise HTTPException(status_code=401, detail="wrong username or password")
    throttle.login_succeeded(username, address)
    await asyncio.to_thread(users.audit, session.user.username, "login", None, address)
    out = {"token": session.token, **session.user.as_dict(), "expires": session.expires.isoformat()}
    response = JSONResponse(out)
    # HttpOnly: page scripts never see it; SameSite=Strict: another site cannot make a browser use it.
    settings = auth_settings(request.app)
    secure = settings is not None and settings.cookie_secure
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
    if not (isinstance(username, str) and isinstance(role, str) and isinstance(password, str)) or (
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
        throttle, key = throttle_of(request.app), f"password:{username.lower()}"
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
