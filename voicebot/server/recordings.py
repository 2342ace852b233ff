"""Playback of call recordings (:mod:`voicebot.recording`).

    GET /api/calls/{id}/recording   the call's stereo WAV (caller left, bot and agent right); Range requests
                                    answered (206) so the browser's player can seek (``#t=SECONDS``)

Supervisors and admins may play every call, an agent only a call handed to them (404 otherwise, as for the call
record). Starting a playback (a request from the first byte) is written to the audit log; the player's further
Range requests for the same file are not.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse

from voicebot.server.access import LoggedIn, ensure_can_see_call
from voicebot.storage.calls import PLAYABLE

router = APIRouter()


def _starts_playback(range_header: str | None) -> bool:
    """A request without Range, or from byte 0: a new playback (audited), not the player seeking."""
    if not range_header:
        return True
    spec = range_header.partition("=")[2].strip()
    return spec.startswith("0-")


@router.get("/api/calls/{call_id}/recording")
async def call_recording(call_id: str, request: Request, who: LoggedIn) -> FileResponse:
    """The recording of a call as ``audio/wav``; 404 when there is none (never recorded, declined, deleted)."""
    await ensure_can_see_call(request, who, call_id)
    store = request.app.state.runtime.store
    row = await asyncio.to_thread(store.recording, call_id)
    if row is None or not row.path or row.consent not in PLAYABLE or not Path(row.path).is_file():
        raise HTTPException(status_code=404, detail=f"no recording of call {call_id}")
    if _starts_playback(request.headers.get("range")):
        await asyncio.to_thread(request.app.state.users.audit, who.username, "play_recording", call_id)
    return FileResponse(row.path, media_type="audio/wav", filename=f"{call_id}.wav",
                        content_disposition_type="inline")
