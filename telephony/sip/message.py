"""SIP messages (RFC 3261 §7): parse bytes into a request or response, serialise back to bytes.

The parser is the first thing hostile input meets, so it is strict and bounded: a message that cannot be
trusted raises :class:`SipParseError`, which says whether a 4xx/5xx can still be sent back (``status``) or the
datagram must be dropped (``status is None``, e.g. no usable Via).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 65535
MAX_HEADER_BYTES = 16384
MAX_HEADER_LINE = 4096
MAX_HEADERS = 128
SIP_VERSION = "SIP/2.0"
BRANCH_MAGIC = "z9hG4bK"

# RFC 3261 §7.3.3 compact forms plus the ones of RFC 3515 (r) and RFC 3892 (b).
COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "r": "Refer-To", "b": "Referred-By",
    "o": "Event", "u": "Allow-Events",
}
# Canonical spelling used when we write a header, keyed by lower-case name.
CANONICAL = {name.lower(): name for name in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Length", "Content-Type",
    "Allow", "Supported", "User-Agent", "Server", "Record-Route", "Route", "WWW-Authenticate",
    "Proxy-Authenticate", "Authorization", "Proxy-Authorization", "Expires", "Refer-To", "Referred-By",
    "Event", "Subscription-State", "P-Asserted-Identity", "Accept", "Retry-After", "Warning", "Reason",
    "Allow-Events", "Min-Expires",
)}
REQUIRED_REQUEST_HEADERS = ("via", "from", "to", "call-id", "cseq")

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")

REASONS = {
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "Version Not Supported",
    513: "Message Too Large", 603: "Decline",
}


class SipParseError(ValueError):
    """A message that cannot be used. ``status`` is the response to send (None: drop silently)."""

    def __init__(self, message: str, status: int | None = 400, partial: SipRequest | None = None):
        super().__init__(message)
        self.status = status
        # The request as far as it could be read, so the caller can copy Via/From/To/Call-ID/CSeq into a reply.
        self.partial = partial


def canonical(name: str) -> str:
    """The usual spelling of a header name (compact forms expanded)."""
    name = name.strip()
    lower = name.lower()
    if lower in COMPACT:
        return COMPACT[lower]
    return CANONICAL.get(lower, name)


class Headers:
    """Ordered, multi-valued, case-insensitive header list."""

    def __init__(self, items: list[tuple[str, str]] | None = None):
        self._items: list[tuple[str, str]] = []
        for name, value in items or []:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._items.append((canonical(name), value))

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical(name).lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value, with comma-joined values of list headers split apart."""
        key = canonical(name).lower()
        out: list[str] = []
        for n, v in self._items:
            if n.lower() == key:
                out.extend(split_list(v) if key in _LIST_HEADERS else [v])
        return out

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = canonical(name).lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def copy(self) -> Headers:
        return Headers(list(self._items))


_LIST_HEADERS = {"via", "route", "record-route", "contact", "allow", "supported", "accept"}


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes and <...>."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True  # a quoted-pair: the next character is literal, even a quote
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return [p for p in parts if p]


def parse_params(text: str) -> dict[str, str]:
    """``;a=1;b`` -> {"a": "1", "b": ""} (names lower-cased)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        out[name.strip().lower()] = value.strip().strip('"')
    return out


def format_params(params: dict[str, str]) -> str:
    """{"a": "1", "b": ""} -> ``;a=1;b`` (the reverse of :func:`parse_params`)."""
    return "".join(f";{k}={v}" if v else f";{k}" for k, v in params.items())


@dataclass
class SipUri:
    """``sip:user@host:port;params`` (user and port optional)."""

    host: str
    user: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a SIP/SIPS/TEL-less URI; raises ValueError on anything else."""
        text = text.strip()
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in ("sip", "sips"):
            raise ValueError(f"not a sip: URI: {text[:80]!r}")
        rest = rest.split("?", 1)[0]
        main, _, params = rest.partition(";")
        user = None
        if "@" in main:
            user, _, main = main.rpartition("@")
            user = user.split(":", 1)[0] or None
        host, port = main, None
        if main.startswith("["):
            end = main.find("]")
            if end < 0:
                raise ValueError("bad IPv6 host")
            host, tail = main[: end + 1], main[end + 1 :]
            if tail.startswith(":"):
                port = _port(tail[1:])
        elif ":" in main:
            host, p = main.rsplit(":", 1)
            port = _port(p)
        if not host or not re.match(r"^[A-Za-z0-9\-.\[\]:_]+$", host):
            raise ValueError(f"bad host in URI: {host[:80]!r}")
        return cls(host=host, user=user, port=port, scheme=scheme, params=parse_params(params))

    def __str__(self) -> str:
        s = f"{self.scheme}:"
        if self.user:
            s += f"{self.user}@"
        s += self.host
        if self.port:
            s += f":{self.port}"
        return s + format_params(self.params)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text[:10]!r}")
    return int(text)


@dataclass
class Address:
    """A name-addr or addr-spec as in From/To/Contact: ``"Name" <sip:u@h>;tag=x``."""

    uri: str
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse per RFC 3261 §25.1: ``[display-name] <URI> *(;param)`` or ``addr-spec *(;param)``. A quoted
        display name is text, whatever it contains. Raises ValueError for anything else."""
        text = text.strip()
        if text.startswith('"'):
            display, end = _quoted_string(text)
            rest = text[end:].lstrip()
            if not rest.startswith("<"):
                raise ValueError("a quoted display name must be followed by <URI>")
        elif "<" in text:
            lt = text.index("<")
            if any(c in text[:lt] for c in '">'):
                raise ValueError("bad display name")
            display, rest = " ".join(text[:lt].split()), text[lt:]
        else:
            # addr-spec: parameters after the URI belong to the header, not the URI (RFC 3261 §20.10).
            if any(c in text for c in '"<>'):
                raise ValueError("bad address")
            uri, _, params = text.partition(";")
            return cls(uri=uri.strip(), params=parse_params(params))
        gt = rest.find(">")
        if gt < 0:
            raise ValueError("unclosed <")
        uri = rest[1:gt].strip()
        if not uri or any(c in uri for c in '<"') or any(c.isspace() for c in uri):
            raise ValueError("bad URI in <>")
        tail = rest[gt + 1 :].strip()
        if tail and not tail.startswith(";"):
            raise ValueError("unexpected text after <URI>")
        return cls(uri=uri, display=display, params=parse_params(tail))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag") or None

    @property
    def user(self) -> str | None:
        try:
            return SipUri.parse(self.uri).user
        except ValueError:
            # tel: URIs and other schemes: the part after the colon is the number.
            scheme, _, rest = self.uri.partition(":")
            return rest.split(";")[0] or None if scheme.lower() == "tel" else None

    def __str__(self) -> str:
        quoted = self.display.replace("\\", "\\\\").replace('"', '\\"')
        s = f'"{quoted}" <{self.uri}>' if self.display else f"<{self.uri}>"
        return s + format_params(self.params)


def _quoted_string(text: str) -> tuple[str, int]:
    """The unescaped content of the quoted-string ``text`` starts with, and the index just past it."""
    out: list[str] = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ValueError("unterminated quoted display name")


@dataclass
class Via:
    """One Via entry: ``SIP/2.0/UDP host:port;branch=...;rport``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        proto, _, rest = text.strip().partition(" ")
        pieces = [p.strip() for p in proto.split("/")]
        if len(pieces) != 3 or pieces[0].upper() != "SIP" or pieces[1] != "2.0":
            raise ValueError(f"bad Via protocol {proto[:40]!r}")
        sent_by, _, params = rest.strip().partition(";")
        sent_by = sent_by.strip()
        host, port = sent_by, None
        if sent_by.startswith("["):
            end = sent_by.find("]")
            host = sent_by[: end + 1]
            if sent_by[end + 1 :].startswith(":"):
                port = _port(sent_by[end + 2 :])
        elif ":" in sent_by:
            host, p = sent_by.rsplit(":", 1)
            port = _port(p)
        if not host:
            raise ValueError("Via without host")
        return cls(transport=pieces[2].upper(), host=host, port=port, params=parse_params(params))

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")

    @property
    def sent_by(self) -> str:
        return f"{self.host}:{self.port or 5060}"

    def __str__(self) -> str:
        s = f"SIP/2.0/{self.transport} {self.host}"
        if self.port:
            s += f":{self.port}"
        return s + format_params(self.params)


@dataclass
class CSeq:
    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10 or not _TOKEN.match(parts[1]):
            raise ValueError(f"bad CSeq {text[:40]!r}")
        number = int(parts[0])
        if number >= 2**31:
            raise ValueError("CSeq number out of range")
        return cls(number, parts[1].upper())

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


@dataclass
class SipMessage:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The wire form, with Content-Length always set to the body length."""
        lines = [self._start_line()]
        for name, value in self.headers.items():
            if name.lower() != "content-length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    # Accessors for the headers every message has; they raise ValueError if the header is bad.
    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.headers.get("CSeq") or "")

    @property
    def from_addr(self) -> Address:
        return Address.parse(self.headers.get("From") or "")

    @property
    def to_addr(self) -> Address:
        return Address.parse(self.headers.get("To") or "")

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(self.headers.get_all("Via")[0])


@dataclass
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    @property
    def transaction_key(self) -> tuple[str, str, str]:
        """RFC 3261 §17.2.3 server transaction id: branch, sent-by, method (ACK matches its INVITE)."""
        via = self.top_via
        method = "INVITE" if self.method == "ACK" else self.method
        return (via.branch, via.sent_by, method)


@dataclass
class SipResponse(SipMessage):
    status: int = 200
    reason: str = ""

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason or REASONS.get(self.status, 'Unknown')}"


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def make_response(request: SipRequest, status: int, reason: str = "", to_tag: str | None = None,
                  body: bytes = b"", extra: list[tuple[str, str]] | None = None) -> SipResponse:
    """A response copying Via, From, To, Call-ID and CSeq from ``request`` (RFC 3261 §8.2.6.2)."""
    headers = Headers()
    for v in request.headers.get_all("Via"):
        headers.add("Via", v)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            if name == "To" and to_tag and status != 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
    for name, value in extra or []:
        headers.add(name, value)
    return SipResponse(headers=headers, body=body, status=status, reason=reason or REASONS.get(status, ""))


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one whole SIP message (a UDP datagram or one framed TCP message).

    Raises :class:`SipParseError` for anything malformed; the error carries the status to answer with, or
    ``None`` when no response can or should be sent (responses, garbage, no Via).
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large", None)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    if len(head) > MAX_HEADER_BYTES:
        raise SipParseError("header section too large", None)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("header section is not UTF-8", None) from None
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    is_response = start.startswith("SIP/")
    bad_version = False
    if not is_response:
        parts = start.split(" ")
        if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1] or not parts[2].startswith("SIP/"):
            raise SipParseError("not a SIP request line", None)
        bad_version = parts[2] != SIP_VERSION
    headers = Headers()
    for line in lines[1:]:
        if not line:
            continue
        if len(line) > MAX_HEADER_LINE:
            raise SipParseError("header line too long", None)
        if line[0] in " \t":
            if not headers._items:
                raise SipParseError("continuation without header", None)
            name, value = headers._items[-1]
            headers._items[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            raise SipParseError("malformed header line", None)
        headers.add(name, value.strip())
        if len(headers._items) > MAX_HEADERS:
            raise SipParseError("too many headers", None)
    msg: SipRequest | SipResponse
    if is_response:
        m = _STATUS_LINE.match(start)
        if not m:
            raise SipParseError("bad status line", None)
        msg = SipResponse(headers=headers, status=int(m.group(1)), reason=m.group(2))
    else:
        method, uri, _ = start.split(" ")
        msg = SipRequest(headers=headers, method=method.upper(), uri=uri)
    # Via first: without a usable Via we cannot route a response, so the message is dropped.
    try:
        if not msg.vias:
            raise ValueError("no Via")
        msg.top_via  # noqa: B018 - validates
    except ValueError as exc:
        raise SipParseError(f"bad or missing Via: {exc}", None) from None
    status: int | None = 400 if isinstance(msg, SipRequest) else None
    partial = msg if isinstance(msg, SipRequest) else None
    if bad_version:
        raise SipParseError("unsupported SIP version", 505, partial)
    missing = [h for h in REQUIRED_REQUEST_HEADERS if not headers.get(h)]
    if missing:
        raise SipParseError(f"missing header {canonical(missing[0])}", status, partial)
    try:
        cseq = msg.cseq
        msg.from_addr  # noqa: B018
        msg.to_addr  # noqa: B018
    except ValueError as exc:
        raise SipParseError(str(exc), status, partial) from None
    if isinstance(msg, SipRequest) and cseq.method != msg.method:
        raise SipParseError("CSeq method does not match the request method", status, partial)
    cl = headers.get("Content-Length")
    if cl is not None:
        if not cl.strip().isdigit():
            raise SipParseError("bad Content-Length", status, partial)
        length = int(cl.strip())
        if length > len(body):
            # RFC 3261 §18.3: a datagram that ends before its declared body is malformed.
            raise SipParseError("body shorter than Content-Length", status, partial)
        body = body[:length]
    msg.body = body
    return msg
