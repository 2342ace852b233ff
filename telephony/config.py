"""The ``sip:`` and ``trunks:`` sections of voicebot.yaml."""

from __future__ import annotations

import ipaddress
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from telephony.rtp.session import LatchMode
from telephony.sdp import SrtpMode


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _srtp_mode(v: object) -> object:
    # YAML 1.1 reads a bare `off` as false.
    return "off" if v is False else v


_DEFAULT_CODECS: list[Literal["PCMU", "PCMA"]] = ["PCMU", "PCMA"]


class SipConfig(_Section):
    enabled: bool = Field(default=True, description="Start the SIP listener with `voicebot serve`.")
    listen_udp: str | None = Field(default="0.0.0.0:5060", description="host:port for SIP over UDP; empty: no UDP.")
    listen_tcp: str | None = Field(default="0.0.0.0:5060", description="host:port for SIP over TCP; empty: no TCP.")
    listen_tls: str | None = Field(default=None, description="host:port for SIP over TLS (usually 5061); empty: no "
                                                              "TLS. Needs tls_cert and tls_key.")
    tls_cert: str | None = Field(default=None, description="PEM file with the certificate chain of the TLS listener.")
    tls_key: str | None = Field(default=None, description="PEM file with the private key of the TLS listener.")
    srtp: SrtpMode = Field(default="off", description="SRTP (SDES) for calls that come from no configured trunk: "
                                                      "off, offer (either) or required (plain RTP gets 488).")
    public_address: str | None = Field(
        default=None, description="Address put in Via/Contact/SDP (behind NAT: the public IP). Empty: the "
                                  "address the peer is reached from."
    )
    rtp_port_min: int = Field(default=20000, ge=1024, le=65535)
    rtp_port_max: int = Field(default=20999, ge=1024, le=65535)
    rtp_latching: LatchMode = Field(
        default="sdp", description="Whose RTP a call accepts: 'sdp' the address in the caller's SDP (any port on "
                                   "it); 'signalling' the address its SIP comes from (callers behind NAT whose SDP "
                                   "names a private address); 'first' whoever sends first (unsafe). A call never "
                                   "switches to another source once its media started."
    )
    codecs: list[Literal["PCMU", "PCMA"]] = Field(default_factory=lambda: _DEFAULT_CODECS.copy(),
                                                 description="Audio codecs in order of preference.")
    user_agent: str = "voicebot"
    max_calls: int = Field(default=50, ge=1, description="Concurrent calls; more get 503.")
    invites_per_second_per_source: float = Field(
        default=20.0, gt=0, description="New INVITEs accepted per second from one IP address; a flood above it "
                                        "is dropped."
    )
    max_unacked_per_source: int = Field(
        default=10, ge=1, description="Inbound calls from one IP address that may be ringing or waiting for the ACK "
                                      "of their 200 OK at once; more get 503 (unacknowledged calls hold a slot "
                                      "for up to 32 s)."
    )
    tcp_max_connections: int = Field(
        default=256, ge=1, description="SIP connections over TCP or TLS accepted at once; more are closed at once."
    )
    tcp_first_message_s: float = Field(
        default=30.0, gt=0, description="An accepted TCP or TLS connection that sends no whole SIP message within "
                                        "this long is closed."
    )
    no_media_timeout_s: float = Field(
        default=30.0, ge=0, description="An answered call that receives no RTP for this long (while not on hold) "
                                        "is hung up with end reason 'no media'; 0: never."
    )
    ring_timeout_s: float = Field(default=30.0, gt=0, description="Outbound calls not answered in time are cancelled.")
    jitter_buffer_ms: int = Field(default=60, ge=20, le=500)

    @field_validator("srtp", mode="before")
    @classmethod
    def _srtp_off(cls, v: object) -> object:
        return _srtp_mode(v)

    @field_validator("listen_udp", "listen_tcp", "listen_tls")
    @classmethod
    def _hostport(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        split_hostport(v)
        return v

    @model_validator(mode="after")
    def _range(self) -> SipConfig:
        if self.rtp_port_max - self.rtp_port_min < 2:
            raise ValueError("rtp_port_max must be at least rtp_port_min + 2")
        if self.listen_tls and not (self.tls_cert and self.tls_key):
            raise ValueError("listen_tls needs tls_cert and tls_key")
        return self


def split_hostport(value: str, default_port: int = 5060) -> tuple[str, int]:
    """``"0.0.0.0:5060"`` -> ("0.0.0.0", 5060); ``"[::1]:5070"`` and a bare host work too."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or str(default_port)
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, str(default_port)
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return host, int(port)


class DidRoute(_Section):
    """What to do with calls to one dialled number."""

    greeting: str | None = None
    flow: str | None = Field(default=None, description="Intent/flow to start with; empty: open question.")
    language: str = "en"


class TrunkConfig(_Section):
    """A SIP trunk or PBX the bot takes calls from and places calls through."""

    name: str
    host: str
    port: int = Field(default=5060, ge=1, le=65535, description="5060; 5061 with transport tls.")
    transport: Literal["udp", "tcp", "tls"] = "udp"
    tls_ca: str | None = Field(default=None, description="PEM file of the CA(s) the trunk's TLS certificate must "
                                                         "chain to; empty: the system's trust store.")
    tls_verify: bool = Field(default=True, description="Check the trunk's TLS certificate and host name; false "
                                                       "only for tests (a warning is logged).")
    srtp: SrtpMode = Field(default="off", description="SRTP (SDES, RFC 4568) on this trunk's calls: off, offer "
                                                      "(encrypt if the peer agrees) or required (plain RTP gets 488).")
    username: str | None = None
    password_env: str | None = Field(default=None, description="Name of the environment variable holding the password.")
    # Named register_ in Python because BaseModel already has a `register`; the YAML key is `register`.
    register_: bool = Field(default=False, alias="register", description="Register with the trunk (REGISTER + refresh).")
    register_expires: int = Field(default=300, ge=10)
    inbound_auth: bool = Field(default=False, description="Challenge INVITEs from this trunk with username/password "
                                                 "(digest) when they do not come from allowed_ips.")
    allowed_ips: list[str] = Field(default_factory=list, description="Source IPs or networks (CIDR) whose calls "
                                                                     "are accepted. Empty: the host, if it is an IP.")
    trust_asserted_identity: bool = Field(
        default=True, description="Take the caller's number from P-Asserted-Identity on calls that come from this "
                                  "trunk's address (host / allowed_ips). Never for calls let in by digest only."
    )
    dids: dict[str, DidRoute] = Field(default_factory=dict)
    outbound_proxy: str | None = Field(
        default=None, description="HOST:PORT of the SIP proxy this trunk is reached through (a cluster's SIP front; "
                                  "a cluster node sets it from cluster.sip_front): calls go there naming the trunk, "
                                  "the proxy answers the trunk's challenges, and the trunk's own calls come in "
                                  "through the proxy, not from its address.")
    outbound_proxy_username: str | None = Field(
        default=None, description="User name this node answers the outbound_proxy's own challenge (407) with; a "
                                  "cluster node sets it to cluster.node_id.")
    outbound_proxy_password_env: str | None = Field(
        default=None, description="Name of the environment variable holding the password (a cluster node: the "
                                  "cluster's secret, cluster.secret_env) the outbound_proxy's challenge is answered "
                                  "with, once.")

    @field_validator("srtp", mode="before")
    @classmethod
    def _srtp_off(cls, v: object) -> object:
        return _srtp_mode(v)

    @field_validator("allowed_ips")
    @classmethod
    def _nets(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return v

    @field_validator("outbound_proxy")
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v:
            split_hostport(v)
        return v or None

    @model_validator(mode="after")
    def _tls_port(self) -> TrunkConfig:
        if self.transport == "tls" and "port" not in self.model_fields_set:
            self.port = 5061
        return self

    @model_validator(mode="after")
    def _credentials(self) -> TrunkConfig:
        if (self.register_ or self.inbound_auth) and not (self.username and self.password_env):
            raise ValueError("register / inbound_auth need username and password_env")
        return self

    @property
    def password(self) -> str | None:
        """The password from the environment (None if unset)."""
        return os.environ.get(self.password_env) if self.password_env else None

    @property
    def outbound_proxy_password(self) -> str | None:
        """The outbound proxy's password from the environment (None if unset or empty)."""
        env = self.outbound_proxy_password_env
        return (os.environ.get(env) or None) if env else None

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        items = list(self.allowed_ips)
        if not items:
            try:
                ipaddress.ip_address(self.host)
                items = [self.host]
            except ValueError:
                pass
        return [ipaddress.ip_network(i, strict=False) for i in items]


def check_trunks(trunks: list[TrunkConfig]) -> list[tuple[str, str]]:
    """Problems a schema cannot see: duplicate names, passwords missing from the environment, missing CA files."""
    problems = []
    seen: set[str] = set()
    for i, t in enumerate(trunks):
        if t.name in seen:
            problems.append((f"trunks.{i}.name", f"duplicate trunk name {t.name!r}"))
        seen.add(t.name)
        if t.password_env and os.environ.get(t.password_env) is None:
            problems.append((f"trunks.{i}.password_env", f"environment variable {t.password_env} is not set"))
        if t.tls_ca and not os.path.isfile(t.tls_ca):
            problems.append((f"trunks.{i}.tls_ca", f"file {t.tls_ca} does not exist"))
    return problems


def check_sip(sip: SipConfig) -> list[tuple[str, str]]:
    """Problems of the sip section a schema cannot see: TLS certificate and key files that do not exist."""
    problems = []
    if sip.listen_tls:
        for key in ("tls_cert", "tls_key"):
            path = getattr(sip, key)
            if path and not os.path.isfile(path):
                problems.append((f"sip.{key}", f"file {path} does not exist"))
    return problems


def security_warnings(sip: SipConfig, trunks: list[TrunkConfig]) -> list[tuple[str, str]]:
    """Settings that work but weaken security: SRTP keys sent in clear signalling, certificate checks off."""
    warnings = []
    if sip.srtp != "off" and not sip.listen_tls:
        warnings.append(("sip.srtp", "SRTP keys travel in clear SDP without listen_tls: whoever sees the signalling "
                                     "can decrypt the audio"))
    for i, t in enumerate(trunks):
        if t.transport == "tls" and not t.tls_verify:
            warnings.append((f"trunks.{i}.tls_verify", "the trunk's TLS certificate is not checked: anyone on the "
                                                       "path can read and change its calls"))
        if t.srtp != "off" and t.transport != "tls":
            warnings.append((f"trunks.{i}.srtp", f"SRTP keys travel in clear SDP over {t.transport}: whoever sees "
                                                 "the signalling can decrypt the audio (use transport: tls)"))
    return warnings
