"""The supervisors' alerts (voicebot.alerts) over HTTP.

    GET  /api/alerts?open=1          alerts newest first (``open=1``: only those whose call is in progress);
                                     supervisors and admins see all, an agent the alerts assigned to them
    POST /api/alerts/{id}/ack        acknowledge (supervisors, admins, and the user the alert is assigned to, who
                                     sees it on the agent page; audit-logged); 409 if already acknowledged
    POST /api/alerts/{id}/assign     ``{"user": NAME}``: give it to a supervisor or agent user (audit-logged)

Every change is published as ``alert.updated``, so every dashboard updates at once.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request

from voicebot.alerts import AlertBook, AlertConflict, UnknownAlert
from voicebot.events import EventBus
from voicebot.server.access import LoggedIn, Staff, users_of
from voicebot.server.request_body import json_object

router = APIRouter()

MAX_LIST = 500


def alert_book(app: FastAPI, engine: Any, bus: EventBus) -> AlertBook:
    """The app's alert book (``app.state.alerts``) on ``engine``, listening to ``bus``."""
    book = app.state.alerts = AlertBook(engine, bus)
    book.attach()
    return book


def _book(request: Request) -> AlertBook:
    return request.app.state.alerts


@router.get("/api/alerts")
async def list_alerts(request: Request, who: LoggedIn, open_: Annotated[int, Query(alias="open")] = 0,
                      limit: int = 200) -> dict[str, Any]:
    """Alerts newest first; an agent gets only those assigned to them."""
    mine = None if who.sees_all else who.username
    alerts = await _book(request).list(open_only=bool(open_), assigned_to=mine, limit=max(1, min(limit, MAX_LIST)))
    return {"alerts": [a.as_dict() for a in alerts]}


@router.post("/api/alerts/{alert_id}/ack")
async def ack_alert(alert_id: str, request: Request, who: LoggedIn) -> dict[str, Any]:
    """The supervisor, or the agent it is assigned to, has seen the alert."""
    book = _book(request)
    if not who.sees_all:
        mine = await book.get(alert_id)
        if mine is None or mine.assigned_to != who.username:
            raise HTTPException(status_code=403, detail="an agent acknowledges only the alerts assigned to them")
    try:
        alert = await book.ack(alert_id, who.username)
    except UnknownAlert:
        raise HTTPException(status_code=404, detail=f"no alert {alert_id}") from None
    except AlertConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    await asyncio.to_thread(users_of(request.app).audit, who.username, "alert_ack", alert.call_id, alert_id)
    return alert.as_dict()


@router.post("/api/alerts/{alert_id}/assign")
async def assign_alert(alert_id: str, request: Request, who: Staff) -> dict[str, Any]:
    """Give the alert to a user (a supervisor or an agent): ``{"user": "alice"}``."""
    body = await json_object(request)
    name = body.get("user")
    if not isinstance(name, str) or not name.strip():
        raise HTTPException(status_code=400, detail='give the user to assign the alert to: {"user": "NAME"}')
    users = users_of(request.app)
    user = await asyncio.to_thread(users.get, name.strip())
    if user is None:
        raise HTTPException(status_code=400, detail=f"no user {name.strip()!r}")
    try:
        alert = await _book(request).assign(alert_id, user.username, who.username)
    except UnknownAlert:
        raise HTTPException(status_code=404, detail=f"no alert {alert_id}") from None
    await asyncio.to_thread(users.audit, who.username, "alert_assign", alert.call_id,
                            f"{alert_id} to {user.username}")
    return alert.as_dict()
