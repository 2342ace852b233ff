"""Who may call the bot: configured trunks by source IP and/or digest, loopback when no trunk is configured."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from telephony.config import TrunkConfig
from telephony.sip.auth import DigestVerifier

log = logging.getLogger(__name__)


@dataclass
class Decision:
    """``action`` is "accept" (with the trunk, None for a loopback test call), "challenge" or "reject".
    ``by_address``: the trunk was recognised by the source address (a trust domain), not by a password."""

    action: str
    trunk: TrunkConfig | None = None
    by_address: bool = False


class AccessPolicy:
    def __init__(self, trunks: list[TrunkConfig], realm: str = "voicebot"):
        # A trunk reached through a proxy (a cluster's SIP front) calls in through that proxy's own trunk entry.
        self.trunks = [t for t in trunks if t.outbound_proxy is None]
        self.realm = realm
        creds = {t.username: t.password for t in self.trunks if t.inbound_auth and t.username and t.password}
        self.verifier = DigestVerifier(realm, {u: p for u, p in creds.items() if p is not None})

    def decide(self, source_ip: str, method: str, authorization: str | None, uri: str = "") -> Decision:
        """Decide for an out-of-dialog request to the Request-URI ``uri`` from ``source_ip`` carrying
        ``authorization`` (or None)."""
        try:
            ip = ipaddress.ip_address(source_ip)
        except ValueError:
            return Decision("reject")
        if not self.trunks:
            return Decision("accept") if ip.is_loopback else Decision("reject")
        for trunk in self.trunks:
            if any(ip in net for net in trunk.networks()):
                return Decision("accept", trunk, by_address=True)
        if any(t.inbound_auth for t in self.trunks):
            user = self.verifier.verify(authorization, method, uri, source_ip)
            if user is not None:
                return Decision("accept", next(t for t in self.trunks if t.username == user))
            return Decision("reject") if authorization else Decision("challenge")
        return Decision("reject")


class RateLimiter:
    """Token bucket per source address: ``rate`` events per second with a burst of twice that."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(2 * rate, 1.0)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if len(self._buckets) > 10000:
            self._buckets.clear()  # bounded memory under a spoofed-source flood
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1, now)
        return True
