"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616 for SHA-256, RFC 8760 for SIP).

Both sides: :func:`authorization` answers a 401/407 challenge as a client; :class:`DigestVerifier` challenges
and checks requests as a server (used for inbound trunk authentication).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode()).hexdigest()


def parse_digest(value: str) -> dict[str, str]:
    """``Digest realm="x", nonce="y", qop="auth"`` -> {"realm": "x", ...} (names lower-cased).

    Raises ValueError if the scheme is not Digest.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"unsupported authentication scheme {scheme[:20]!r}")
    out: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,\t":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            end = rest.find('"', i + 1)
            if end < 0:
                raise ValueError("unterminated quoted string")
            out[name] = rest[i + 1 : end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            out[name] = rest[i:end].strip()
            i = end
    return out


def digest_response(algorithm: str, username: str, realm: str, password: str, method: str, uri: str,
                    nonce: str, qop: str | None = None, nc: str = "00000001", cnonce: str = "") -> str:
    """The ``response`` value of RFC 2617/7616 for ``qop=auth`` or no qop."""
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


def authorization(challenge: str, username: str, password: str, method: str, uri: str, nc: int = 1) -> str:
    """The Authorization / Proxy-Authorization value answering a WWW-/Proxy-Authenticate ``challenge``.

    Raises ValueError for a challenge we cannot answer (unknown algorithm, qop without ``auth``).
    """
    p = parse_digest(challenge)
    algorithm = p.get("algorithm", "MD5").upper()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    realm, nonce = p.get("realm", ""), p.get("nonce", "")
    qop = None
    if "qop" in p:
        offered = [q.strip() for q in p["qop"].split(",")]
        if "auth" not in offered:
            raise ValueError(f"unsupported qop {p['qop']!r}")
        qop = "auth"
    cnonce = secrets.token_hex(8)
    ncs = f"{nc:08x}"
    resp = digest_response(algorithm, username, realm, password, method, uri, nonce, qop, ncs, cnonce)
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f'response="{resp}"', f"algorithm={algorithm}"]
    if qop:
        parts += [f"qop={qop}", f"nc={ncs}", f'cnonce="{cnonce}"']
    if "opaque" in p:
        parts.append(f'opaque="{p["opaque"]}"')
    return "Digest " + ", ".join(parts)


@dataclass
class DigestVerifier:
    """Server side: issues challenges and checks answers for one realm and a username/password table.

    A nonce is bound to the address it was issued to and expires after ``nonce_lifetime_s``; within that
    time each answer must carry a higher nonce count (``nc``) than the last accepted one (an answer
    without qop is single-use), and the digest ``uri`` must be the request's Request-URI, so a captured
    answer cannot be replayed for another call or another target."""

    realm: str
    credentials: dict[str, str]
    algorithm: str = "MD5"
    nonce_lifetime_s: float = 300.0

    def __post_init__(self) -> None:
        self._secret = secrets.token_hex(16)
        self._counts: dict[str, int] = {}  # nonce -> the highest nc accepted with it

    def challenge(self, source: str) -> str:
        """A WWW-Authenticate / Proxy-Authenticate value with a fresh nonce for requests from ``source``."""
        stamp = f"{int(time.time()):x}.{secrets.token_hex(6)}"
        nonce = f"{stamp}.{self._mac(stamp, source)}"
        return f'Digest realm="{self.realm}", nonce="{nonce}", algorithm={self.algorithm}, qop="auth"'

    def _mac(self, stamp: str, source: str) -> str:
        return _h("SHA-256", f"{self._secret}:{stamp}:{source}")[:24]

    def _nonce_ok(self, nonce: str, source: str) -> bool:
        stamp, _, mac = nonce.rpartition(".")
        try:
            age = time.time() - int(stamp.partition(".")[0], 16)
        except ValueError:
            return False
        return secrets.compare_digest(mac, self._mac(stamp, source)) and 0 <= age <= self.nonce_lifetime_s

    def verify(self, header: str | None, method: str, uri: str, source: str) -> str | None:
        """The authenticated username if ``header`` answers, for the first time, one of the challenges we sent
        to ``source``, computed for ``method`` and the Request-URI ``uri``; else None."""
        if not header:
            return None
        try:
            p = parse_digest(header)
        except ValueError:
            return None
        user, algorithm = p.get("username", ""), p.get("algorithm", "MD5").upper()
        password = self.credentials.get(user)
        if password is None or algorithm not in ALGORITHMS or p.get("realm") != self.realm:
            return None
        nonce, qop = p.get("nonce", ""), p.get("qop")
        if p.get("uri", "") != uri or not self._nonce_ok(nonce, source):
            return None
        if qop:
            try:
                count = int(p.get("nc", ""), 16)
            except ValueError:
                return None
        else:
            count = 1  # no nonce count without qop: the nonce is good once
        if count <= self._counts.get(nonce, 0):
            return None
        expected = digest_response(algorithm, user, self.realm, password, method, uri, nonce, qop,
                                   p.get("nc", ""), p.get("cnonce", ""))
        if not secrets.compare_digest(expected, p.get("response", "")):
            return None
        self._remember(nonce, count)
        return user

    def _remember(self, nonce: str, count: int) -> None:
        if len(self._counts) >= 1000:
            # Only answered nonces are kept; drop those that expired (their answers fail the age check anyway).
            self._counts = {n: c for n, c in self._counts.items() if self._nonce_age_ok(n)}
        self._counts[nonce] = count

    def _nonce_age_ok(self, nonce: str) -> bool:
        try:
            return time.time() - int(nonce.partition(".")[0], 16) <= self.nonce_lifetime_s
        except ValueError:
            return False
