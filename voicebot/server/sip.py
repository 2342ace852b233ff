"""SIP calls in ``voicebot serve``: each answered SIP leg runs the same call pipeline as a WebRTC caller."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import TYPE_CHECKING, Any

from telephony.call import CallLeg
from telephony.server import RunCall, SipServer
from telephony.transport import SipCallTransport
from voicebot.pipeline.builder import build_call_pipeline

if TYPE_CHECKING:
    import uvicorn

    from voicebot.server.runtime import Runtime

log = logging.getLogger(__name__)


def sip_call_runner(runtime: Runtime) -> RunCall:
    """``run_call`` for :class:`SipServer`: build the call pipeline over the leg's transport and run it."""

    async def run(leg: CallLeg, transport: SipCallTransport) -> None:
        session = runtime.engine.new_call(channel="sip", caller_id=leg.caller, call_id=leg.call_id)
        call = build_call_pipeline(transport, session, runtime.shared, runtime.settings, runtime.store)

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport: Any, _leg: Any) -> None:
            await call.greet()

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport: Any, _leg: Any) -> None:
            await call.caller_left()

        await call.run()

    return run


async def serve_with_sip(http: uvicorn.Server, runtime: Runtime) -> None:
    """Run the HTTP server and, if ``sip.enabled``, the SIP listener beside it, until the HTTP server stops.

    Raises SystemExit with a readable message if the SIP port cannot be bound.
    """
    settings = runtime.settings
    # Everything loaded so far (models, NLU, domain) lives as long as the process. Freezing it keeps later
    # full garbage collections short: a collection holds the GIL and would stall the RTP pacer thread.
    gc.freeze()
    sip = None
    if settings.sip.enabled:
        sip = SipServer(settings.sip, settings.trunks, sip_call_runner(runtime))
        try:
            await sip.start()
        except OSError as exc:
            where = ", ".join(f"{kind} {addr}" for kind, addr in (("udp", settings.sip.listen_udp),
                                                                  ("tcp", settings.sip.listen_tcp)) if addr)
            raise SystemExit(f"voicebot: cannot listen for SIP on {where}: {exc.strerror or exc}") from None
        log.info("SIP ready (%d trunk(s) configured)", len(settings.trunks))
    try:
        await http.serve()
    finally:
        if sip is not None:
            await asyncio.wait_for(sip.stop(), 10)
