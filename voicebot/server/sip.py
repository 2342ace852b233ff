"""SIP calls in ``voicebot serve``: each answered SIP leg is run by :class:`voicebot.calls.CallRunner`, as a
WebRTC caller is; a SIP leg outlives the bot's pipeline, so the queue takes it once the bot let go."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import TYPE_CHECKING

from telephony.call import CallLeg
from telephony.config import TrunkConfig
from telephony.server import RunCall, SipServer
from telephony.transport import SipCallTransport
from voicebot.calls import CallRunner
from voicebot.cluster.pages import page_agent

if TYPE_CHECKING:
    import uvicorn

    from voicebot.config import Settings
    from voicebot.runtime import Runtime
    from voicebot.transfer import TransferService

log = logging.getLogger(__name__)


def sip_call_runner(runtime: Runtime, transfer: TransferService | None = None) -> RunCall:
    """``run_call`` for :class:`SipServer`: run the call (:class:`voicebot.calls.CallRunner`) over the leg.

    With ``transfer``, a hand-off ends the bot's pipeline (the leg stays up) and the caller goes to the
    agent queue until their call is over.
    """

    async def run(leg: CallLeg, transport: SipCallTransport) -> None:
        route = leg.route  # the trunk's settings for the dialled number, if any
        session = runtime.engine.new_call(
            channel="sip", caller_id=leg.caller, call_id=leg.call_id, dialled=leg.dialled,
            greeting=route.greeting if route else None, start_intent=route.flow if route else None,
        )
        await CallRunner(runtime, session, transport, leg=leg, transfer=transfer,
                         resume_transport=lambda: SipCallTransport(leg)).run()

    return run


def node_trunks(settings: Settings) -> list[TrunkConfig]:
    """The trunks this process's SIP user agent uses: as configured, except that a cluster node
    (``cluster.node_id``) registers with none of them. The cluster's SIP front (Kamailio) registers instead, with its
    own address as Contact; a node registering too would have the trunk's calls bypass the front. With
    ``cluster.sip_front``, every trunk but the front itself is reached through the front (``outbound_proxy``): the
    node's calls through it go there, the node proves the cluster's secret to the front (``cluster.secret_env``), and
    the front answers the trunk's challenges."""
    if not settings.cluster.node_id:
        return settings.trunks
    front = settings.cluster.sip_front
    trunks = []
    for t in settings.trunks:
        update: dict[str, object] = {"register_": False}
        if front and f"{t.host}:{t.port}" != front:
            # The front challenges the node's call out; the node answers with the cluster's secret.
            update.update(outbound_proxy=front, outbound_proxy_username=settings.cluster.node_id,
                          outbound_proxy_password_env=settings.cluster.secret_env)
        trunks.append(t.model_copy(update=update))
    return trunks


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
        sip = SipServer(settings.sip, node_trunks(settings), sip_call_runner(runtime, transfer))
        if transfer is not None:
            transfer.use_ua(sip.ua)
            # Another node ringing an agent page connected here (a cluster): not a caller for the bot.
            sip.add_route(lambda leg: page_agent(leg.dialled) is not None, transfer.page_call)
        try:
            await sip.start()
        except OSError as exc:
            where = ", ".join(f"{kind} {addr}" for kind, addr in (("udp", settings.sip.listen_udp),
                                                                  ("tcp", settings.sip.listen_tcp),
                                                                  ("tls", settings.sip.listen_tls)) if addr)
            raise SystemExit(f"voicebot: cannot listen for SIP on {where}: {exc.strerror or exc}") from None
        log.info("SIP ready (%d trunk(s) configured)", len(settings.trunks))
    try:
        await http.serve()
    finally:
        if sip is not None:
            await asyncio.wait_for(sip.stop(), 10)
