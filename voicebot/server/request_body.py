"""Reading a request's body the one way every router does: a JSON object, or a 400 saying what is wrong."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object; a 400 saying what is wrong otherwise."""
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(status_code=400, detail="the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="the request body must be a JSON object")
    return body
