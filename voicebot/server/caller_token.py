"""Signed caller IDs for browser callers.

A browser caller is anonymous: anyone can open the caller page and claim any number, and a number is what
the bot's memory of a customer is keyed on. Only the company's own site, which knows who is logged in there,
may give a browser caller a number: it signs it with a secret it shares with this server
(``webrtc.caller_token_secret_env`` names the environment variable holding it) and hands the token to the
page (``/?caller_token=...``), which sends it with its WebRTC offer.

Token format, easy to produce in any language (``b64url`` is base64url without ``=`` padding)::

    payload = caller_id + "|" + expiry            # expiry: Unix time in whole seconds
    token   = b64url(payload) + "." + b64url(HMAC-SHA256(secret, payload))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time

MAX_CALLER_ID = 64


class CallerTokenError(ValueError):
    """A token that cannot be used; the message says why (malformed, wrong signature, expired)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def _check_caller_id(caller_id: str) -> None:
    if not caller_id or len(caller_id) > MAX_CALLER_ID or not caller_id.isprintable():
        raise CallerTokenError(f"a caller ID must be 1 to {MAX_CALLER_ID} printable characters")


def sign(caller_id: str, secret: bytes, ttl_s: int = 300, now: float | None = None) -> str:
    """A token saying the caller is ``caller_id``, valid for ``ttl_s`` seconds from ``now``."""
    _check_caller_id(caller_id)
    if ttl_s <= 0:
        raise CallerTokenError("a caller token needs a positive lifetime")
    expiry = int(time.time() if now is None else now) + ttl_s
    payload = f"{caller_id}|{expiry}".encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify(token: str, secret: bytes, now: float | None = None) -> str:
    """The caller ID a genuine, unexpired token names; raises CallerTokenError otherwise."""
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 512:
        raise CallerTokenError("the caller token is malformed (expected PAYLOAD.SIGNATURE)")
    encoded, signature = token.split(".")
    try:
        payload, mac = _unb64(encoded), _unb64(signature)
    except (binascii.Error, ValueError):
        raise CallerTokenError("the caller token is malformed (not base64url)") from None
    # Constant time, and before the payload is trusted in any way.
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise CallerTokenError("the caller token's signature is not valid")
    caller_id, _, expiry = payload.decode("utf-8", "replace").rpartition("|")
    if not expiry.isdigit():
        raise CallerTokenError("the caller token is malformed (no expiry)")
    if int(expiry) < (time.time() if now is None else now):
        raise CallerTokenError("the caller token has expired")
    _check_caller_id(caller_id)
    return caller_id


def secret_from_env(variable: str | None) -> bytes | None:
    """The secret held by the environment variable ``variable`` (None if no variable is configured).
    Raises CallerTokenError if it is configured but unset or empty: tokens could not be checked."""
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise CallerTokenError(f"environment variable {variable} (webrtc.caller_token_secret_env) is not set")
    return value.encode()
