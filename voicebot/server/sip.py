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
from voicebot.pipeline.call import handoff_json

if TYPE_CHECKING:
    import uvicorn

    from dialogs.manager.handoff import HandoffPacket
    from voicebot.pipeline.call import CallContext
    from voicebot.server.runtime import Runtime
    from voicebot.transfer import TransferService

log = logging.getLogger(__name__)


def sip_call_runner(runtime: Runtime, transfer: TransferService | None = None) -> RunCall:
    """``run_call`` for :class:`SipServer`: build the call pipeline over the leg's transport and run it.

    With ``transfer``, a hand-off ends the bot's pipeline (the leg stays up) and the caller goes to the
    agent queue until their call is over.
    """

    async def run(leg: CallLeg, transport: SipCallTransport) -> None:
        route = leg.route  # the trunk's settings for the dialled number, if any
        session = runtime.engine.new_call(
            channel="sip", caller_id=leg.caller, call_id=leg.call_id, dialled=leg.dialled,
            greeting=route.greeting if route else None, start_intent=route.flow if route else None,
        )
        handed: dict[str, Any] = {}

        async def on_handoff(ctx: CallContext, packet: HandoffPacket | None) -> None:
            # The bot is done: stop its pipeline without hanging up (a cancel, not an end, keeps the leg).
            handed["packet"] = handoff_json(packet or ctx.handoff)
            ctx.end_reason = "handoff"
            handed["stop"] = asyncio.ensure_future(call.worker.cancel(reason="handoff"))

        call = build_call_pipeline(transport, session, runtime.shared, runtime.settings, runtime.store,
                                   on_handoff=on_handoff if transfer is not None else None)
        # The agent is rung when the dialog decides to hand off, so they hear the whisper while the caller
        # hears the bot's announcement; the queue takes the leg once the pipeline has let go of it.
        released = asyncio.Event()

        def on_handoff_decided(ctx: CallContext, packet: HandoffPacket | None) -> None:
            if transfer is not None and "queued" not in handed:
                handed["queued"] = asyncio.ensure_future(
                    transfer.handoff(leg, ctx, handoff_json(packet or ctx.handoff), caller_ready=released))

        call.call.on_handoff_decided = on_handoff_decided

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport: Any, _leg: Any) -> None:
            await call.greet()

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport: Any, _leg: Any) -> None:
            await call.caller_left()

        try:
            await call.run()
        finally:
            released.set()  # the pipeline is done with the leg (or the caller hung up during the announcement)
        if "queued" in handed:
            await handed["queued"]
        elif transfer is not None and "packet" in handed and leg.state == "answered":
            await transfer.handoff(leg, call.call, handed["packet"])

    return run


async def serve_with_sip(http: uvicorn.Server, runtime: Runtime, transfer: TransferService | None = None) -> None:
    """Run the HTTP server and, if ``sip.enabled``, the SIP listener beside it, until the HTTP server stops.
    ``transfer`` (the agent queue) dials agents through the SIP listener's user agent.

    Raises SystemExit with a readable message if the SIP port cannot be bound.
    """
    settings = runtime.settings
    # Everything loaded so far (models, NLU, domain) lives as long as the process. Freezing it keeps later
    # full garbage collections short: a collection holds the GIL and would stall the RTP pacer thread.
    gc.freeze()
    sip = None
    if settings.sip.enabled:
        sip = SipServer(settings.sip, settings.trunks, sip_call_runner(runtime, transfer))
        if transfer is not None:
            transfer.use_ua(sip.ua)
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
