"""The SIP endpoint (PJSIP's ``sip_endpoint.c``): transports, transactions and dispatch, nothing about calls.

It parses every received message, stamps where a request really came from, matches retransmissions and
responses to their transaction and offers each new request to the handlers added with :meth:`add_handler`
(the INVITE-session layer) in order. What no handler takes gets the standard answer: 200 to OPTIONS, 481 to
an in-dialog request for an unknown dialog, 405 or 501 otherwise. Malformed or hostile input is answered
with the matching 4xx or dropped, and logged; it never reaches a handler.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Coroutine, Iterable
from typing import Any, Protocol

from telephony.access import AccessPolicy, Decision, RateLimiter
from telephony.config import SipConfig, TrunkConfig, split_hostport
from telephony.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    Via,
    make_response,
    new_branch,
    new_tag,
    parse_message,
    split_list,
)
from telephony.sip.transaction import ClientTransaction, ServerTransaction, Timers
from telephony.sip.transport import Peer, SipTransport, TlsClient, TransportError

log = logging.getLogger(__name__)

# The order methods are listed in an Allow header.
_METHOD_ORDER = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "NOTIFY", "REFER", "UPDATE")
_IN_DIALOG_ONLY = {"BYE", "INFO", "NOTIFY", "REFER", "PRACK", "UPDATE"}
_KNOWN_NOT_ALLOWED = {"REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE"}


class ResolveError(Exception):
    """A host name that does not resolve to an address."""


class RequestHandler(Protocol):
    """A layer above the endpoint that may take incoming requests (PJSIP's module ``on_rx_request``)."""

    def on_request(self, req: SipRequest, peer: Peer) -> bool:
        """Handle ``req`` (a new request, not a retransmission) and return True, or return False to pass it on."""
        ...


class Endpoint:
    """One per user agent: listens on the configured UDP/TCP addresses, runs the transactions and hands new
    requests to its handlers. ``access`` and ``limiter`` guard out-of-dialog requests (see :meth:`admit`)."""

    def __init__(self, config: SipConfig, trunks: list[TrunkConfig], timers: Timers | None = None):
        self.config = config
        self.trunks = trunks
        self.timers = timers or Timers()
        self.transport = SipTransport(self._on_message, max_incoming_tcp=config.tcp_max_connections,
                                      first_message_timeout_s=config.tcp_first_message_s)
        self.access = AccessPolicy(trunks)
        self.limiter = RateLimiter(config.invites_per_second_per_source)
        self.server_tx: dict[tuple[str, str, str], ServerTransaction] = {}
        self.client_tx: dict[tuple[str, str], ClientTransaction] = {}
        self.rejected = 0
        self.malformed = 0
        self._handlers: list[RequestHandler] = []
        self._methods: set[str] = {"OPTIONS"}
        self._tasks: set[asyncio.Task] = set()
        self._log_times: dict[str, float] = {}
        self._tls_contexts: dict[str | None, ssl.SSLContext] = {}  # client contexts by trunk name

    def add_handler(self, handler: RequestHandler, methods: Iterable[str]) -> None:
        """Offer new requests to ``handler`` (after those added before); ``methods`` join the Allow header."""
        self._handlers.append(handler)
        self._methods.update(methods)

    @property
    def allow(self) -> str:
        """The Allow header value: the methods this endpoint and its handlers implement."""
        return ", ".join([m for m in _METHOD_ORDER if m in self._methods]
                         + sorted(self._methods - set(_METHOD_ORDER)))

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the configured UDP/TCP/TLS listeners. Raises OSError if a port is taken or the TLS certificate
        or key cannot be loaded."""
        if self.config.listen_udp:
            addr = await self.transport.listen_udp(*split_hostport(self.config.listen_udp))
            log.info("SIP listening on udp:%s:%s", *addr)
        if self.config.listen_tcp:
            addr = await self.transport.listen_tcp(*split_hostport(self.config.listen_tcp))
            log.info("SIP listening on tcp:%s:%s", *addr)
        if self.config.listen_tls:
            addr = await self.transport.listen_tls(*split_hostport(self.config.listen_tls), self._server_context())
            log.info("SIP listening on tls:%s:%s", *addr)

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.config.tls_cert or "", self.config.tls_key or "")
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"sip.tls_cert / sip.tls_key: cannot load {self.config.tls_cert} with "
                          f"{self.config.tls_key}: {exc}") from None
        return context

    def _client_context(self, trunk: TrunkConfig | None) -> ssl.SSLContext:
        name = trunk.name if trunk else None
        if name not in self._tls_contexts:
            try:
                context = ssl.create_default_context(cafile=trunk.tls_ca if trunk else None)
            except OSError as exc:
                raise TransportError(f"trunk {name}: cannot load tls_ca {trunk.tls_ca if trunk else ''}: "
                                     f"{exc.strerror or exc}") from None
            if trunk is not None and not trunk.tls_verify:
                log.warning("SIP: trunk %s: TLS certificate checks are off (tls_verify: false)", trunk.name)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls_contexts[name] = context
        return self._tls_contexts[name]

    async def close(self) -> None:
        """Let running tasks finish for a grace period, cancel the rest, close the sockets."""
        # Call handlers end on their own once their leg ended (a pipeline that is cancelled in the middle of
        # closing can hang); only what is still running after a grace period is cancelled.
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=3)
        for task in list(self._tasks):
            task.cancel()
        await self.transport.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coro`` as a task the endpoint keeps a reference to (and cancels on close)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP task failed", exc_info=task.exception())

    # --- addressing ----------------------------------------------------------------------------------------
    def local_host(self, peer: Peer | None = None) -> str:
        """Our address as ``peer`` should see it: the configured public address, the listen address, or the
        interface the OS routes to the peer through."""
        if self.config.public_address:
            return self.config.public_address
        listen = self.transport.udp_address or self.transport.tcp_address or self.transport.tls_address
        if listen and listen[0] not in ("0.0.0.0", "::"):
            return listen[0]
        target = peer.host if peer else "192.0.2.1"
        try:
            with socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"

    def local_port(self, transport: str) -> int:
        addr = {"TCP": self.transport.tcp_address, "TLS": self.transport.tls_address}.get(
            transport, self.transport.udp_address)
        return addr[1] if addr else (5061 if transport == "TLS" else 5060)

    def bind_host(self) -> str:
        """The address we listen on, for media sockets to bind to as well."""
        listen = self.transport.udp_address or self.transport.tcp_address or self.transport.tls_address
        return listen[0] if listen else "0.0.0.0"

    def via(self, peer: Peer) -> Via:
        return Via(peer.transport, self.local_host(peer), self.local_port(peer.transport),
                   {"branch": new_branch(), "rport": ""})

    def contact(self, peer: Peer, user: str = "voicebot") -> str:
        uri = f"sip:{user}@{self.local_host(peer)}:{self.local_port(peer.transport)}"
        return uri + (f";transport={peer.transport.lower()}" if peer.reliable else "")

    def standard_headers(self, peer: Peer) -> list[tuple[str, str]]:
        return [("Contact", f"<{self.contact(peer)}>"), ("Allow", self.allow), ("User-Agent", self.config.user_agent)]

    def send(self, peer: Peer, data: bytes) -> None:
        self.transport.send_nowait(peer, data)

    def log_limited(self, key: str, level: int, msg: str, *args: object) -> None:
        """Log at most one line per ``key`` per second: a flood must not become a log flood."""
        now = time.monotonic()
        if now - self._log_times.get(key, 0.0) >= 1.0:
            if len(self._log_times) > 10000:
                self._log_times.clear()
            self._log_times[key] = now
            log.log(level, msg, *args)

    # --- receiving -----------------------------------------------------------------------------------------
    def _on_message(self, data: bytes, peer: Peer) -> None:
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self.malformed += 1
            self.log_limited(f"bad:{peer.host}", logging.WARNING, "SIP: malformed message from %s: %s", peer, exc)
            if exc.status and exc.partial is not None and exc.partial.method != "ACK":
                self.send(peer, make_response(exc.partial, exc.status, f"Bad Request ({exc})"
                                              if exc.status == 400 else "").to_bytes())
            return
        if isinstance(msg, SipResponse):
            self._on_response(msg)
        else:
            _stamp_via(msg, peer)
            self._on_request(msg, peer)

    def server_transaction(self, req: SipRequest, peer: Peer) -> ServerTransaction:
        """A new server transaction for ``req``; it absorbs the request's retransmissions from now on."""
        tx = ServerTransaction(req, lambda b: self.send(peer, b), peer.reliable, self.timers,
                               lambda t: self.server_tx.pop(t.request.transaction_key, None))
        self.server_tx[req.transaction_key] = tx
        return tx

    def find_server_transaction(self, key: tuple[str, str, str]) -> ServerTransaction | None:
        """The live server transaction with ``(branch, sent-by, method)``, if any."""
        return self.server_tx.get(key)

    def reply(self, req: SipRequest, peer: Peer, status: int, reason: str = "",
              extra: list[tuple[str, str]] | None = None) -> None:
        """A stateless response (errors before any transaction exists)."""
        if req.method != "ACK":
            self.send(peer, make_response(req, status, reason, to_tag=new_tag(), extra=extra).to_bytes())

    def _on_request(self, req: SipRequest, peer: Peer) -> None:
        tx = self.server_tx.get(req.transaction_key)
        if tx is not None:
            tx.receive(req)
            return
        for handler in self._handlers:
            if handler.on_request(req, peer):
                return
        if req.method == "ACK":
            return
        if req.to_addr.tag or req.method == "CANCEL":
            self.reply(req, peer, 481)
        elif req.method == "OPTIONS":
            if self.access.decide(peer.host, "OPTIONS", None).action == "reject" and not self._is_trunk_host(peer):
                self._reject(req, peer, "OPTIONS")
                return
            self.reply(req, peer, 200, extra=[("Allow", self.allow), ("Accept", "application/sdp"),
                                              ("User-Agent", self.config.user_agent)])
        elif req.method in _IN_DIALOG_ONLY:
            self.reply(req, peer, 481)
        elif req.method in _KNOWN_NOT_ALLOWED:
            self.reply(req, peer, 405, extra=[("Allow", self.allow)])
        else:
            self.reply(req, peer, 501, extra=[("Allow", self.allow)])

    def admit(self, req: SipRequest, peer: Peer) -> Decision | None:
        """Flood limit and access control for a new out-of-dialog request: the access decision (with the trunk
        it came from) if it may proceed; None if it was dropped or answered here (403 or a 407 challenge)."""
        if not self.limiter.allow(peer.host):
            self.log_limited(f"flood:{peer.host}", logging.WARNING,
                             "SIP: %s flood from %s; dropping %ss above %.0f/s",
                             req.method, peer, req.method, self.config.invites_per_second_per_source)
            return None
        decision = self.access.decide(peer.host, req.method, req.headers.get("Proxy-Authorization"), req.uri)
        if decision.action == "reject":
            self._reject(req, peer, req.method)
            return None
        if decision.action == "challenge":
            self.reply(req, peer, 407, extra=[("Proxy-Authenticate", self.access.verifier.challenge(peer.host))])
            return None
        return decision

    def _is_trunk_host(self, peer: Peer) -> bool:
        return any(t.host == peer.host for t in self.trunks)

    def _reject(self, req: SipRequest, peer: Peer, what: str) -> None:
        self.rejected += 1
        self.log_limited(f"403:{peer.host}", logging.WARNING,
                         "SIP: %s from %s rejected with 403 (not a configured trunk): From %s To %s",
                         what, peer, req.headers.get("From"), req.headers.get("To"))
        self.reply(req, peer, 403)

    def _on_response(self, resp: SipResponse) -> None:
        try:
            key = (resp.top_via.branch, resp.cseq.method)
        except ValueError:
            return
        tx = self.client_tx.get(key)
        if tx is not None:
            tx.receive(resp)

    # --- sending requests ----------------------------------------------------------------------------------
    async def send_request(self, req: SipRequest, peer: Peer) -> ClientTransaction:
        """Start a client transaction for ``req``; ``await tx.final`` gives the final response."""
        if peer.reliable:
            await self.transport.send(peer, b"")
        tx = ClientTransaction(req, lambda b: self.send(peer, b), peer.reliable, self.timers,
                               lambda t: self.client_tx.pop(t.key, None))
        self.client_tx[tx.key] = tx
        tx.start()
        return tx

    async def request(self, req: SipRequest, peer: Peer) -> SipResponse:
        """Send ``req`` and return its final response (a local 408 if the peer never answers)."""
        return await (await self.send_request(req, peer)).final

    async def resolve(self, host: str, port: int, transport: str) -> Peer:
        """A :class:`Peer` with ``host`` resolved to an address. Raises ResolveError if it does not resolve.
        For TLS, the connection will check the certificate against ``host`` and the trust of the trunk that
        has this host and port (its ``tls_ca``), else the system's trust store."""
        peer = await self._resolve(host, port, transport)
        if transport == "TLS":
            trunk = next((t for t in self.trunks if t.host == host and t.port == port and t.transport == "tls"), None)
            self.transport.set_tls_client(peer.host, peer.port, TlsClient(self._client_context(trunk), host))
        return peer

    async def _resolve(self, host: str, port: int, transport: str) -> Peer:
        try:
            ipaddress.ip_address(host)
            return Peer(transport, host, port)
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise ResolveError(f"cannot resolve {host}: {exc}") from None
        return Peer(transport, str(infos[0][4][0]), port)


def _stamp_via(req: SipRequest, peer: Peer) -> None:
    """Record where the request really came from in its top Via (RFC 3261 §18.2.1, RFC 3581): responses
    copy it, and we send them to that address, so a caller behind NAT gets its answers."""
    items = req.headers.items()
    for i, (name, value) in enumerate(items):
        if name == "Via":
            via = Via.parse(split_list(value)[0])
            if "rport" in via.params:
                via.params["rport"] = str(peer.port)
            if via.host != peer.host or "rport" in via.params:
                via.params["received"] = peer.host
            rest = split_list(value)[1:]
            req.headers._items[i] = (name, ", ".join([str(via), *rest]))
            return
