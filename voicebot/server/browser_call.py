"""A browser (WebRTC) call in ``voicebot serve``: the channel's part of :class:`voicebot.calls.CallRunner`.

The caller is a :class:`~voicebot.server.caller_leg.BrowserLeg` whose stages sit around the transport
(:class:`~voicebot.server.caller_leg.LegTransport`): the connection belongs to the bot's pipeline, which keeps
running after a hand-off to the agent queue (or a supervisor's take-over) while the leg takes the caller's audio,
until the queue or the supervisor hangs the leg up or the caller leaves. The caller page's keypad goes to the
bot, or to the leg once the queue or a supervisor has the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipecat.transports.base_transport import BaseTransport

from voicebot.calls import CallRunner
from voicebot.server.caller_leg import BrowserLeg, LegTransport, key_of_message

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession
    from voicebot.runtime import Runtime
    from voicebot.transfer import TransferService


class BrowserCall:
    """One WebRTC call over ``transport`` (``call_id``: the connection's), with the agent queue if
    ``transfer``. :meth:`run` it until the call is over."""

    def __init__(self, runtime: Runtime, session: DialogSession, transport: BaseTransport, call_id: str,
                 caller: str | None, transfer: TransferService | None = None):
        # A leg even without the agent queue: a supervisor may take the caller over from the bot.
        self.leg = leg = BrowserLeg(call_id, caller, self._end_call)
        self.runner = CallRunner(
            runtime, session, transport,
            leg=leg,
            transfer=transfer,
            take_over=leg.take_over,
            give_back=leg.give_back,
            end_leg=leg.peer_gone,
            pipeline_transport=LegTransport(transport, leg),
        )
        transport.add_event_handler("on_app_message", self._message)

    async def run(self) -> None:
        """Run the call until both the bot and the queue are done with it."""
        await self.runner.run()

    async def key(self, key: str) -> None:
        """A key from the caller page's keypad: to the leg once the queue or a supervisor has the caller, else to
        the bot."""
        if self.leg.taken:
            self.leg._key_in(key)
        else:
            await self.runner.press(key)

    async def _message(self, _transport: Any, message: Any, _sender: Any) -> None:
        key = key_of_message(message)
        if key is not None:
            await self.key(key)

    async def _end_call(self) -> None:
        await self.runner.end()
