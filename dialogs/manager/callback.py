"""An honest hand-off when no human can take the call: the caller hears that nobody is available now and is
offered a callback; yes stores a callback request with the hand-off packet (the number confirmed, or asked
for when the caller has none, e.g. a browser), no ends the call politely.

Whether a human can take a call and where a callback request goes is the application's business: it gives
the engine an :class:`AgentDesk` (``DialogEngine.desk``). Without one the library assumes a human is there.
The call's outcome says what happened: ``callback_requested`` or ``no_agent``, never ``handoff``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from dialogs.db.repository import normalize_phone
from dialogs.manager import asides
from dialogs.manager.handoff import build_handoff
from dialogs.manager.state import Expect

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession
    from dialogs.nlu import ParseResult

log = logging.getLogger(__name__)

CALLBACK_REQUESTED = "callback_requested"
NO_AGENT = "no_agent"

# Said when the domain has no response of that name (a domain written before this existed).
DEFAULT_RESPONSES = {
    "no_agent_offer_callback": "I'm sorry, none of my colleagues is available right now. "
                               "Would you like one of them to call you back?",
    "callback_confirm_number": "Shall we call you back on {number_spoken}?",
    "callback_ask_number": "What number should we call you back on?",
    "callback_noted": "Thank you. A colleague will call you back on {number_spoken} as soon as possible. Goodbye!",
    "callback_failed": "I'm sorry, I couldn't note your callback request. Please call again later. Goodbye!",
    "no_agent_goodbye": "Alright. I'm sorry we couldn't do more today. Thank you for calling, goodbye!",
}


class AgentDesk(Protocol):
    """Where the application says whether a human can take a call now, and keeps callback requests."""

    def agents_available(self, queue: str) -> bool:
        """True if a hand-off to ``queue`` can reach a human (or the queue's own fallback) now."""
        ...

    def request_callback(self, *, call_id: str, number: str, queue: str, reason: str,
                         packet: dict[str, Any]) -> int:
        """Store a callback request to ``number`` with the hand-off ``packet``; returns its id."""
        ...


def spell_number(number: str) -> str:
    """A phone number read digit by digit ("+1 555 123" -> "5 5 5 1 2 3" without the country code 1)."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if number.startswith("+1") and len(digits) == 11:
        digits = digits[1:]
    return " ".join(digits)


def offer(session: DialogSession) -> None:
    """Nobody can take the call: say so and offer a callback (the hand-off packet is kept for it)."""
    session._fire("no agent available: offer a callback")
    session.no_agent_outcome = NO_AGENT
    _say(session, "no_agent_offer_callback")
    session.state.expect = Expect.OFFER_CALLBACK


def on_answer(session: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The caller's answer to the callback offer, to the number read back, or the number itself. A request said
    beside it ("yes, and it's also about my password") goes into the hand-off packet the callback keeps."""
    st = session.state
    others = asides.requests_in(session, parse)
    if others and session.handoff_packet is not None and asides.queue(session, others, keep_values=False):
        session.handoff_packet = build_handoff(session, reason=session.handoff_packet.reason)
    if st.expect is Expect.CALLBACK_NUMBER:
        found = session._entity_value(parse, "phone", text, dtmf)
        number = normalize_phone(str(found)) if found else None
        if number:
            return _store(session, number)
        session.callback_reprompts += 1
        if session.callback_reprompts > session.engine.options.max_reprompts:
            return _goodbye(session)
        _say(session, "callback_ask_number")
        return True
    yes = session._yes_no(parse, text, dtmf)
    if yes is None:
        session.callback_reprompts += 1
        if session.callback_reprompts > session.engine.options.max_reprompts:
            return _goodbye(session)
        _say(session, "no_agent_offer_callback" if st.expect is Expect.OFFER_CALLBACK else "callback_confirm_number",
             number=spell_number(session.caller_id or ""))
        return True
    if st.expect is Expect.OFFER_CALLBACK:
        if not yes:
            return _goodbye(session)
        session._fire("caller wants a callback")
        if session.caller_id:
            _say(session, "callback_confirm_number", number=spell_number(session.caller_id))
            st.expect = Expect.CALLBACK_CONFIRM
        else:
            _say(session, "callback_ask_number")
            st.expect = Expect.CALLBACK_NUMBER
        return True
    # CALLBACK_CONFIRM: the number the caller rings from, read back
    if yes and session.caller_id:
        return _store(session, session.caller_id)
    _say(session, "callback_ask_number")
    st.expect = Expect.CALLBACK_NUMBER
    return True


def _store(session: DialogSession, number: str) -> bool:
    desk = session.engine.desk
    packet = session.handoff_packet
    assert desk is not None and packet is not None
    try:
        request_id = desk.request_callback(call_id=session.call_id or "", number=number, queue=packet.queue,
                                           reason=packet.reason, packet=packet.to_dict())
    except Exception:
        log.exception("call %s: storing the callback request failed", session.call_id)
        session._fire("storing the callback request failed")
        _say(session, "callback_failed")
        _end(session)
        return True
    session._fire(f"callback request {request_id} stored")
    session.no_agent_outcome = CALLBACK_REQUESTED
    _say(session, "callback_noted", number=spell_number(number))
    _end(session)
    return True


def _goodbye(session: DialogSession) -> bool:
    session._fire("caller declined a callback")
    _say(session, "no_agent_goodbye")
    _end(session)
    return True


def _end(session: DialogSession) -> None:
    session.state.expect = Expect.NOTHING
    session.state.ended = True
    session._hangup = True


def _say(session: DialogSession, name: str, **values: Any) -> None:
    if session.say_.has(name):
        session._say(name, **values)
    else:
        session._out.append(DEFAULT_RESPONSES[name].format(number_spoken=values.get("number", "")))
