"""Registration with a trunk (RFC 3261 §10) with digest authentication and refresh before expiry.

A client of the :class:`~telephony.sip.endpoint.Endpoint` (PJSIP's ``sip_reg.c``): it only sends requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telephony.config import TrunkConfig
from telephony.sip.auth import authorization
from telephony.sip.endpoint import Endpoint
from telephony.sip.message import Address, Headers, SipRequest, SipResponse, new_call_id, new_tag

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 30.0


def refresh_delay(expires: int) -> float:
    """When to re-register: halfway for short registrations, a minute early for long ones."""
    return expires / 2 if expires <= 120 else expires - 60


class Registration:
    """Keeps one trunk registration alive; :attr:`registered` tells whether the last attempt succeeded."""

    def __init__(self, endpoint: Endpoint, trunk: TrunkConfig):
        self.endpoint = endpoint
        self.trunk = trunk
        self.registered = asyncio.Event()
        self.last_status: int | None = None
        self.expires: int = trunk.register_expires
        self.attempts = 0
        self._call_id = new_call_id("voicebot")
        self._tag = new_tag()
        self._cseq = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = self.endpoint.spawn(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.registered.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(self.register(expires=0), 5)

    async def _run(self) -> None:
        while True:
            try:
                resp = await self.register()
            except OSError as exc:
                log.warning("trunk %s: cannot register: %s", self.trunk.name, exc)
                resp = None
            if resp is not None and 200 <= resp.status < 300:
                await asyncio.sleep(refresh_delay(self.expires))
            else:
                await asyncio.sleep(RETRY_AFTER_FAILURE_S)

    async def register(self, expires: int | None = None) -> SipResponse:
        """One REGISTER exchange including the digest retry; returns the final response."""
        trunk = self.trunk
        want = trunk.register_expires if expires is None else expires
        peer = await self.endpoint.resolve(trunk.host, trunk.port, trunk.transport.upper())
        uri = f"sip:{trunk.host}" + (f":{trunk.port}" if trunk.port != 5060 else "")
        aor = f"sip:{trunk.username}@{trunk.host}"
        auth: list[tuple[str, str]] = []
        self.attempts += 1
        for _ in range(2):
            self._cseq += 1
            h = Headers()
            h.add("Via", str(self.endpoint.via(peer)))
            h.add("Max-Forwards", "70")
            h.add("From", str(Address(aor, "", {"tag": self._tag})))
            h.add("To", f"<{aor}>")
            h.add("Call-ID", self._call_id)
            h.add("CSeq", f"{self._cseq} REGISTER")
            h.add("Contact", f"<{self.endpoint.contact(peer, trunk.username or 'voicebot')}>")
            h.add("Expires", str(want))
            h.add("User-Agent", self.endpoint.config.user_agent)
            for name, value in auth:
                h.add(name, value)
            resp = await self.endpoint.request(SipRequest(headers=h, method="REGISTER", uri=uri), peer)
            if resp.status in (401, 407) and not auth and trunk.password:
                challenge = resp.headers.get("WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate")
                try:
                    value = authorization(challenge or "", trunk.username or "", trunk.password, "REGISTER", uri)
                except ValueError as exc:
                    log.error("trunk %s: %s", trunk.name, exc)
                    break
                auth = [("Authorization" if resp.status == 401 else "Proxy-Authorization", value)]
                continue
            break
        self.last_status = resp.status
        if 200 <= resp.status < 300:
            self.expires = _granted_expires(resp, want)
            if want:
                self.registered.set()
                log.info("trunk %s: registered for %d s", trunk.name, self.expires)
        else:
            self.registered.clear()
            log.warning("trunk %s: registration failed: %d %s", trunk.name, resp.status, resp.reason)
        return resp


def _granted_expires(resp: SipResponse, requested: int) -> int:
    for contact in resp.headers.get_all("Contact"):
        try:
            value = Address.parse(contact).params.get("expires", "")
        except ValueError:
            continue  # a registrar's unreadable Contact: fall back to Expires
        if value.isdigit():
            return int(value)
    value = (resp.headers.get("Expires") or "").strip()
    return int(value) if value.isdigit() else requested
