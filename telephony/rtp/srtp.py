"""SRTP (RFC 3711) with the keys SDP offer/answer agreed (SDES, RFC 4568, see :mod:`telephony.sdp`): the one
module that talks to ``pylibsrtp``. Keys never appear in a repr or a log line.
"""

from __future__ import annotations

from pylibsrtp import Error, Policy, Session

from telephony.sdp import SrtpKeys

# libsrtp's profile for each suite name of telephony.sdp.SRTP_SUITES.
_PROFILES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}


class SrtpContext:
    """Encrypts our RTP and authenticates and decrypts the peer's. ``protect`` and ``unprotect`` use separate
    libsrtp sessions, so the sending thread and the receiving loop never share one."""

    def __init__(self, keys: SrtpKeys):
        profile = _PROFILES[keys.suite]
        self.keys = keys
        self._tx = Session(Policy(key=keys.local, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
        self._rx = Session(Policy(key=keys.remote, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))

    def protect(self, packet: bytes) -> bytes:
        return self._tx.protect(packet)

    def unprotect(self, packet: bytes) -> bytes | None:
        """The plain RTP packet, or None if it fails authentication or is a replay."""
        try:
            return self._rx.unprotect(packet)
        except Error:
            return None
