"""Reading a request's body the one way every router does: JSON (``Content-Type: application/json``, nested
no deeper than ``http.max_json_depth``), or a 4xx saying what is wrong.

Requiring the JSON content type also keeps plain HTML forms of other sites out: a browser sends JSON to
another origin only after a CORS preflight, which this server never grants.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import HTTPException, Request

DEFAULT_MAX_DEPTH = 32


def _max_depth(request: Request) -> int:
    settings = getattr(getattr(request.app.state, "runtime", None), "settings", None)
    http = getattr(settings, "http", None)
    return http.max_json_depth if http is not None else DEFAULT_MAX_DEPTH


def depth_of(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (a scalar: 0); iterative, for any depth."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


async def json_value(request: Request) -> Any:
    """The request's JSON body (any JSON value); 415 unless it is sent as ``application/json``, 400 when it is
    not JSON or nests deeper than ``http.max_json_depth``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(status_code=415, detail="send the request body as JSON (Content-Type: application/json)")
    limit = _max_depth(request)
    try:
        body = json.loads(await request.body())
    except RecursionError:  # nested far deeper than any limit: the parser gave up
        raise HTTPException(status_code=400, detail=f"the JSON body nests deeper than {limit} levels") from None
    except ValueError:
        raise HTTPException(status_code=400, detail="the request body is not valid JSON") from None
    if depth_of(body) > limit:
        raise HTTPException(status_code=400, detail=f"the JSON body nests deeper than {limit} levels")
    return body


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object; a 4xx saying what is wrong otherwise."""
    body = await json_value(request)
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="the request body must be a JSON object")
    return body
