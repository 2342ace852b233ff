"""SIP over UDP, TCP and TLS (RFC 3261 §18, §26.3.1): receive whole messages, send bytes to a peer.

The transport knows nothing about SIP semantics except message framing on streams (Content-Length). It hands
every received message as raw bytes to one callback together with the :class:`Peer` it came from. Outgoing
TLS connections check the server's certificate and host name with the :class:`TlsClient` set for the peer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from telephony.sip.message import MAX_HEADER_BYTES, MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", re.IGNORECASE | re.MULTILINE)
TCP_IDLE_TIMEOUT_S = 600.0
TCP_FIRST_MESSAGE_TIMEOUT_S = 30.0  # a connection that has not sent one whole message by then is closed
MAX_INCOMING_TCP = 256  # accepted TCP connections open at once; more are closed at once (idle sockets pile up)


@dataclass(frozen=True)
class Peer:
    """Where a message came from and where its responses go."""

    transport: str  # "UDP", "TCP" or "TLS"
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        """A stream transport (TCP, TLS): no retransmissions (RFC 3261 §17)."""
        return self.transport in ("TCP", "TLS")

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{self.host}:{self.port}"


MessageHandler = Callable[[bytes, Peer], None]


class TransportError(OSError):
    """A connection to a peer that could not be made (refused, TLS handshake or certificate check failed)."""


@dataclass(frozen=True)
class TlsClient:
    """How to open TLS to a peer: the context (trust store, verification) and the name its certificate must
    carry (a host name or an IP address)."""

    context: ssl.SSLContext
    server_hostname: str


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport):
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not data.strip(b"\r\n"):
            return  # keep-alive
        self.owner._deliver(data, Peer("UDP", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: not our problem, the transaction will time out.
        log.debug("UDP error: %s", exc)


class TcpFramer:
    """Splits a TCP byte stream into SIP messages using Content-Length (RFC 3261 §18.3)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete messages. Raises ValueError if the stream cannot be framed."""
        self.buf += data
        out: list[bytes] = []
        while True:
            self.buf = self.buf.lstrip(b"\r\n")
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEADER_BYTES:
                    raise ValueError("header section too large")
                return out
            if end > MAX_HEADER_BYTES:
                raise ValueError("header section too large")
            m = _CONTENT_LENGTH.search(self.buf[:end])
            length = int(m.group(1)) if m else 0
            if length > MAX_MESSAGE_BYTES:
                raise ValueError("body too large")
            total = end + 4 + length
            if len(self.buf) < total:
                return out
            out.append(self.buf[:total])
            self.buf = self.buf[total:]


class SipTransport:
    """UDP, TCP and TLS listeners plus outgoing TCP and TLS connections, sharing one message callback.

    Accepted TCP and TLS connections are limited to ``max_incoming_tcp`` at once and closed when silent: before their
    first whole message after ``first_message_timeout_s``, then after ``idle_timeout_s``."""

    def __init__(self, on_message: MessageHandler, *, max_incoming_tcp: int = MAX_INCOMING_TCP,
                 first_message_timeout_s: float = TCP_FIRST_MESSAGE_TIMEOUT_S,
                 idle_timeout_s: float = TCP_IDLE_TIMEOUT_S):
        self.on_message = on_message
        self.max_incoming_tcp = max_incoming_tcp
        self.first_message_timeout_s = first_message_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self._incoming = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._tcp: dict[tuple[str, str, int], asyncio.StreamWriter] = {}  # by (transport, host, port)
        self._tls_clients: dict[tuple[str, int], TlsClient] = {}
        self._tasks: set[asyncio.Task] = set()
        self.udp_address: tuple[str, int] | None = None
        self.tcp_address: tuple[str, int] | None = None
        self.tls_address: tuple[str, int] | None = None

    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(host, port))
        self._udp = transport  # type: ignore[assignment]
        self.udp_address = transport.get_extra_info("sockname")[:2]
        return self.udp_address

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        server = await asyncio.start_server(self._serve_tcp, host, port)
        self._servers.append(server)
        self.tcp_address = server.sockets[0].getsockname()[:2]
        return self.tcp_address

    async def listen_tls(self, host: str, port: int, context: ssl.SSLContext) -> tuple[str, int]:
        """Accept SIP over TLS with the certificate in ``context``."""
        server = await asyncio.start_server(self._serve_tls, host, port, ssl=context)
        self._servers.append(server)
        self.tls_address = server.sockets[0].getsockname()[:2]
        return self.tls_address

    def set_tls_client(self, host: str, port: int, client: TlsClient) -> None:
        """Use ``client`` when a TLS connection to ``host:port`` is opened."""
        self._tls_clients[(host, port)] = client

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve_incoming(reader, writer, "TCP")

    async def _serve_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve_incoming(reader, writer, "TLS")

    async def _serve_incoming(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              transport: str) -> None:
        addr = writer.get_extra_info("peername")
        if self._incoming >= self.max_incoming_tcp:
            log.warning("refusing a %s connection from %s:%s: %d are open already", transport, addr[0], addr[1],
                        self._incoming)
            writer.close()
            return
        self._incoming += 1
        try:
            await self._read_stream(reader, writer, Peer(transport, addr[0], addr[1]), self.first_message_timeout_s)
        finally:
            self._incoming -= 1

    async def _read_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer,
                           first_timeout: float | None = None) -> None:
        self._tcp[(peer.transport, peer.host, peer.port)] = writer
        framer = TcpFramer()
        timeout = self.idle_timeout_s if first_timeout is None else first_timeout
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), timeout)
                if not data:
                    break
                for message in framer.feed(data):
                    timeout = self.idle_timeout_s
                    self._deliver(message, peer)
        except ValueError as exc:
            log.warning("closing %s connection from %s: %s", peer.transport, peer, exc)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._tcp.pop((peer.transport, peer.host, peer.port), None)
            writer.close()

    def _deliver(self, data: bytes, peer: Peer) -> None:
        try:
            self.on_message(data, peer)
        except Exception:
            # One bad message must never take the listener down; this is a bug in our code, so log loudly.
            log.exception("error handling a SIP message from %s", peer)

    async def send(self, peer: Peer, data: bytes) -> None:
        """Send ``data`` to ``peer``, opening a TCP or TLS connection if needed. Raises TransportError if the
        connection cannot be made (for TLS: also when the server's certificate does not check out)."""
        if peer.reliable and (peer.transport, peer.host, peer.port) not in self._tcp:
            reader, writer = await self._connect(peer)
            self._tcp[(peer.transport, peer.host, peer.port)] = writer
            task = asyncio.create_task(self._read_stream(reader, writer, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.send_nowait(peer, data)

    async def _connect(self, peer: Peer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if peer.transport == "TCP":
            try:
                return await asyncio.open_connection(peer.host, peer.port)
            except OSError as exc:
                raise TransportError(f"cannot connect to {peer}: {exc.strerror or exc}") from None
        client = self._tls_clients.get((peer.host, peer.port)) or TlsClient(ssl.create_default_context(), peer.host)
        try:
            return await asyncio.open_connection(peer.host, peer.port, ssl=client.context,
                                                 server_hostname=client.server_hostname)
        except ssl.SSLCertVerificationError as exc:
            raise TransportError(f"TLS to {peer.host}:{peer.port} refused: the server's certificate does not "
                                 f"check out for {client.server_hostname} ({exc.verify_message})") from None
        except ssl.SSLError as exc:
            raise TransportError(f"TLS handshake with {peer.host}:{peer.port} failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise TransportError(f"cannot connect to {peer}: {exc.strerror or exc}") from None

    def send_nowait(self, peer: Peer, data: bytes) -> None:
        """Send on an existing socket; silently drops if the TCP/TLS connection is gone."""
        if peer.reliable:
            writer = self._tcp.get((peer.transport, peer.host, peer.port))
            if writer is not None and not writer.is_closing():
                writer.write(data)
        elif self._udp is not None:
            self._udp.sendto(data, (peer.host, peer.port))

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        for writer in list(self._tcp.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
