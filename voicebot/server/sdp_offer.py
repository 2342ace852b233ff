"""A WebRTC offer from a browser (a caller, an agent's phone, a supervisor listening in) that aiortc cannot use:
an error the user caused, said the same way by every route (400 "cannot use this SDP offer: ..."), never a
traceback."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCSessionDescription


class UnusableOffer(ValueError):
    """The offer was rejected; the message reads "cannot use this SDP offer: WHY"."""

    def __init__(self, why: object) -> None:
        super().__init__(f"cannot use this SDP offer: {why}")


async def set_offer(pc: RTCPeerConnection, sdp: str, kind: str) -> None:
    """Set the offer as ``pc``'s remote description; :class:`UnusableOffer` if aiortc cannot use it."""
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    except Exception as exc:  # aiortc rejects SDP it cannot parse or use with assorted errors
        raise UnusableOffer(exc) from None
