"""What every HTTP request and websocket passes first: a body size limit, a same-origin check on state-changing
requests and websockets (CSRF, cross-site websocket hijacking), security headers on every response, and a log
filter that keeps session tokens out of uvicorn's logs.

A browser always sends ``Origin`` on a cross-origin POST and on every websocket; a request without one comes
from a program (curl, the CLI clients), which cannot carry another site's cookie, so it passes. The origins
allowed besides the server's own are ``http.allowed_origins``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException

from voicebot.config import HttpConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CLOSE_FORBIDDEN_ORIGIN = 4403
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None when ``origin`` is not one."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def own_origin(scope: Scope) -> str | None:
    """The origin a browser shows for pages of this server: the request's scheme and ``Host``."""
    host = _header(scope, b"host")
    if not host:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope.get("scheme", "http"))
    return normalize_origin(f"{scheme}://{host}")


def content_security_policy(allowed_origins: list[str]) -> str:
    """The CSP of every response: scripts and connections to this server only, framing by allowed origins only."""
    ancestors = " ".join(["'self'", *allowed_origins]) if allowed_origins else "'none'"
    return ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
            f"form-action 'self'; frame-ancestors {ancestors}")


class HttpGuard:
    """ASGI middleware: body limit (413), Origin check (403, websockets closed with 4403), security headers."""

    def __init__(self, app: ASGIApp, settings: HttpConfig):
        self.app = app
        self.settings = settings
        self.allowed = {o for o in (normalize_origin(a) for a in settings.allowed_origins) if o}
        csp = content_security_policy(sorted(self.allowed))
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
        ]
        if not self.allowed:
            self.headers.append((b"x-frame-options", b"DENY"))

    def origin_refused(self, scope: Scope) -> str | None:
        """Why this request's ``Origin`` is refused, or None (no Origin, this server's own, or an allowed one)."""
        origin = _header(scope, b"origin")
        if origin is None:
            return None
        normal = normalize_origin(origin)
        if normal is not None and (normal == own_origin(scope) or normal in self.allowed):
            return None
        return (f"cross-origin request refused: Origin {origin[:100]} is not this server "
                "(an operator may allow it in http.allowed_origins)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            refused = self.origin_refused(scope)
            if refused is not None:
                await receive()  # websocket.connect
                # Accepted, then closed: the page sees the code and the reason, not a bare failed handshake.
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": CLOSE_FORBIDDEN_ORIGIN, "reason": refused[:120]})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _v in message.get("headers") or ()}
                message["headers"] = [*(message.get("headers") or ()),
                                      *((k, v) for k, v in self.headers if k not in present)]
            await send(message)

        if scope["method"] not in SAFE_METHODS:
            refused = self.origin_refused(scope)
            if refused is not None:
                await _error(send_with_headers, 403, refused)
                return
        limit = self.settings.max_body_bytes
        length = _header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            await _error(send_with_headers, 413, too_large(limit))
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body without Content-Length: stopped once it passes the limit
                    raise HTTPException(status_code=413, detail=too_large(limit))
            return message

        await self.app(scope, counted_receive, send_with_headers)


def too_large(limit: int) -> str:
    return f"the request body is larger than {limit} bytes (http.max_body_bytes)"


async def _error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


# tokens out of the logs

_SECRET_PARAM = re.compile(r"((?:^|[?&;\s])(?:token|access_token|call_key|caller_token|password)=)[^&\s\"']*",
                           re.IGNORECASE)


def hide_secrets(text: str) -> str:
    """``text`` with the values of token-like query parameters replaced by ``[hidden]``."""
    return _SECRET_PARAM.sub(r"\1[hidden]", text)


class SecretParamFilter(logging.Filter):
    """Rewrites a log record whose message holds ``token=...`` (an access-log line of ``/ws/events?token=``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Arguments rewritten one by one: uvicorn's access formatter unpacks record.args itself.
        if isinstance(record.msg, str):
            record.msg = hide_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(hide_secrets(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: hide_secrets(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


# uvicorn logs requests on "uvicorn.access" and websocket handshakes on "uvicorn.error".
TOKEN_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn")


def install_log_filter() -> None:
    """Put the ``SecretParamFilter`` on uvicorn's loggers (once; the filter survives uvicorn's log config)."""
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretParamFilter) for f in logger.filters):
            logger.addFilter(SecretParamFilter())
