"""SIP dialogs (RFC 3261 §12): the state two user agents share for one call, and requests inside it."""

from __future__ import annotations

from dataclasses import dataclass, field

from telephony.sip.message import Address, Headers, SipRequest, SipResponse, Via, new_branch


@dataclass
class Dialog:
    """Identified by Call-ID plus local and remote tag; builds in-dialog requests with rising CSeq."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    local_contact: str
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int | None = None
    local_display: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uas(cls, invite: SipRequest, local_tag: str, local_contact: str) -> Dialog:
        """The dialog a 2xx to ``invite`` creates on the answering side (RFC 3261 §12.1.1)."""
        contact = invite.headers.get_all("Contact")
        remote_target = Address.parse(contact[0]).uri if contact else invite.from_addr.uri
        return cls(
            call_id=invite.call_id, local_tag=local_tag, remote_tag=invite.from_addr.tag or "",
            local_uri=invite.to_addr.uri, remote_uri=invite.from_addr.uri, remote_target=remote_target,
            local_contact=local_contact, route_set=invite.headers.get_all("Record-Route"),
            local_cseq=1, remote_cseq=invite.cseq.number,
        )

    @classmethod
    def as_uac(cls, invite: SipRequest, response: SipResponse, local_contact: str) -> Dialog:
        """The dialog a 2xx response to our ``invite`` creates (RFC 3261 §12.1.2)."""
        contact = response.headers.get_all("Contact")
        remote_target = Address.parse(contact[0]).uri if contact else invite.uri
        return cls(
            call_id=invite.call_id, local_tag=invite.from_addr.tag or "",
            remote_tag=response.to_addr.tag or "", local_uri=invite.from_addr.uri,
            remote_uri=response.to_addr.uri, remote_target=remote_target, local_contact=local_contact,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            local_cseq=invite.cseq.number, local_display=invite.from_addr.display,
        )

    def request(self, method: str, via: Via, body: bytes = b"", content_type: str | None = None,
                extra: list[tuple[str, str]] | None = None, cseq: int | None = None) -> SipRequest:
        """A new in-dialog request; CSeq is incremented except for ACK (which reuses the INVITE's)."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        via = Via(via.transport, via.host, via.port, {"branch": new_branch(), "rport": ""})
        h = Headers()
        h.add("Via", str(via))
        h.add("Max-Forwards", "70")
        for route in self.route_set:
            h.add("Route", route)
        h.add("From", str(Address(self.local_uri, self.local_display, {"tag": self.local_tag})))
        h.add("To", str(Address(self.remote_uri, "", {"tag": self.remote_tag} if self.remote_tag else {})))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{cseq} {method}")
        h.add("Contact", f"<{self.local_contact}>")
        for name, value in extra or []:
            h.add(name, value)
        if content_type and body:
            h.add("Content-Type", content_type)
        return SipRequest(headers=h, method=method, uri=self.remote_target, body=body)

    def accept_remote_cseq(self, request: SipRequest) -> bool:
        """False for an out-of-order in-dialog request (answer 500, RFC 3261 §12.2.2); ACK/CANCEL always pass."""
        if request.method in ("ACK", "CANCEL"):
            return True
        n = request.cseq.number
        if self.remote_cseq is not None and n <= self.remote_cseq:
            return False
        self.remote_cseq = n
        return True
