"""voicebot.server.sdp_offer on real aiortc peer connections: an offer aiortc cannot use is one error with one
message, whatever aiortc raised; a browser's offer is set as the remote description."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection

from voicebot.server.sdp_offer import UnusableOffer, set_offer


async def _signaling_state_after(sdp: str) -> str:
    pc = RTCPeerConnection()
    try:
        await set_offer(pc, sdp, "offer")
        return pc.signalingState
    finally:
        await pc.close()


@pytest.mark.parametrize("sdp", [
    "v=0\r\nm=audio 9 nonsense\r\n",  # what tests/test_server_api.py sends /api/offer
    "v=0 nonsense m=audio",  # tests/test_listen.py's
    "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n",  # parses, but no ICE credentials nor DTLS fingerprint
])
def test_an_offer_aiortc_cannot_use_is_one_value_error_saying_so(sdp: str) -> None:
    with pytest.raises(UnusableOffer, match=r"^cannot use this SDP offer: ") as raised:
        asyncio.run(_signaling_state_after(sdp))
    assert isinstance(raised.value, ValueError)


def test_a_browsers_offer_becomes_the_remote_description() -> None:
    async def main() -> str:
        browser = RTCPeerConnection()
        try:
            browser.addTransceiver("audio", direction="sendrecv")
            await browser.setLocalDescription(await browser.createOffer())
            return await _signaling_state_after(browser.localDescription.sdp)
        finally:
            await browser.close()

    assert asyncio.run(main()) == "have-remote-offer"
