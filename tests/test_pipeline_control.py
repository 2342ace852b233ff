"""Call control: a hand-off happens once the caller has heard the announcement, or at once if they talk over it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from voicebot.pipeline.call import CallContext
from voicebot.pipeline.control import CallControl


class _Store:
    def __init__(self) -> None:
        self.writes: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def arun(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.writes.append((method, args, kwargs))


def _call() -> tuple[CallContext, _Store]:
    store = _Store()
    session = SimpleNamespace(dialled=None, state=SimpleNamespace(customer_id=None))
    return CallContext("c1", "sip", "+15551230001", session, store, shared=None), store  # type: ignore[arg-type]


def test_talking_over_the_handoff_announcement_hands_off_once() -> None:
    async def main() -> tuple[list[Any], _Store]:
        call, store = _call()
        handed: list[Any] = []

        async def on_handoff(ctx: CallContext, packet: dict[str, Any] | None) -> None:
            handed.append((ctx.call_id, packet))

        control = CallControl(call, on_handoff=on_handoff)
        call.playing.add(7)
        await call.bot_interrupted()  # a barge-in while the bot answers normally: no hand-off
        assert handed == []
        call.end_reason, call.handoff = "handoff", {"summary": "wants a person"}
        call.playing.add(8)
        await call.bot_interrupted()  # the caller talks over "connecting you to a colleague"
        assert len(handed) == 1  # at once, without waiting for the cut sentence to end
        await control._hand_off(call.handoff)  # the announcement's end arriving later changes nothing
        return handed, store

    handed, store = asyncio.run(main())
    assert handed == [("c1", {"summary": "wants a person"})]
    interrupted = [w for w in store.writes if w[0] == "update_turn" and w[2].get("extra") == {"interrupted": True}]
    assert [w[1][0] for w in interrupted] == [7, 8]
