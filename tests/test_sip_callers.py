"""The SIP benchmarks' reading of a call's record: what the bot heard, which request it found, what it asked next
(benchmarks/sip_callers.py ``understanding``, benchmarks/sip_concurrent.py ``understood``). The records are shaped as
``GET /api/calls/{id}`` returned them for real benchmark calls (trimmed to the fields read)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_benchmarks = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(_benchmarks))  # sip_concurrent imports sip_callers as the benchmarks do


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, _benchmarks / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


callers = _load("sip_callers")
concurrent = _load("sip_concurrent")

GREETING = {"speaker": "bot", "text": "Hello, you're speaking with Acme Online Store's automated assistant.",
            "intents": [], "extra": {"kind": "greeting", "trace": {"expect": "nothing"}}}
ASKS_PHONE = {"speaker": "bot", "text": "Sure, I can check your order. For your security, I need to confirm who you "
                                        "are first. What is the phone number on your account?",
              "intents": [], "extra": {"kind": "reply", "trace": {"expect": "verify_phone"}}}
NOT_UNDERSTOOD = {"speaker": "bot", "text": "Sorry, I didn't get that. Could you say it in other words?",
                  "intents": [], "extra": {"kind": "reply", "trace": {"expect": "nothing",
                                                                     "steps": ["not understood (1 in a row)"]}}}


def caller(text: str, *intents: str) -> dict[str, Any]:
    return {"speaker": "caller", "text": text, "intents": [{"name": n, "confidence": 0.9, "slots": {}} for n in intents],
            "extra": {}}


def record(*turns: dict[str, Any]) -> dict[str, Any]:
    return {"id": "a9d0@127.0.0.1", "channel": "sip", "end": "2026-12-05T09:36:28+00:00", "turns": list(turns)}


def test_a_call_heard_understood_and_answered_as_expected():
    u = callers.understanding(record(GREETING, caller("Where is my order?", "order_status"), ASKS_PHONE),
                              "Where is my order?")
    assert (u.heard, u.wer, u.intents, u.reply_expect) == ("Where is my order?", 0.0, ("order_status",), "verify_phone")
    assert u.intent_right("order_status") and u.reply.startswith("Sure, I can check")


def test_a_misheard_request_counts_its_word_errors_and_the_reply_it_got():
    u = callers.understanding(record(GREETING, caller("Purple monkey dishwasher on the moon.", "out_of_scope"),
                                     NOT_UNDERSTOOD), "Where is my order?")
    assert u.wer == 1.5  # 6 words for 4: 4 substitutions and 2 insertions
    assert u.intents == ("out_of_scope",) and not u.intent_right("order_status")
    assert u.reply_expect == "nothing"


def test_words_are_compared_normalised_and_one_wrong_word_is_a_quarter():
    said = "Where is my order?"
    assert callers.understanding(record(caller("where is my order", "order_status")), said).wer == 0.0
    assert callers.understanding(record(caller("Where is my border?", "order_status")), said).wer == 0.25


def test_a_request_heard_in_two_turns_is_judged_as_one_and_greetings_are_not_requests():
    u = callers.understanding(record(GREETING, caller("Hello.", "greet"), NOT_UNDERSTOOD,
                                     caller("Where is my order?", "order_status"), ASKS_PHONE), "Hello, where is my order?")
    assert u.heard == "Hello. Where is my order?" and u.wer == 0.0
    assert u.intent_right("order_status")
    assert u.reply_expect == "nothing"  # the first reply after the caller's first turn
    two = callers.understanding(record(caller("Where is my order and my bill?", "order_status", "billing_question")),
                                "Where is my order?")
    assert two.intents == ("order_status", "billing_question") and not two.intent_right("order_status")


def test_no_record_or_no_caller_turn_is_nothing_heard():
    for missing in (None, record(GREETING)):
        u = callers.understanding(missing, "Where is my order?")
        assert (u.heard, u.wer, u.intents, u.reply_expect, u.reply) == ("", 1.0, (), None, "")


class Records:
    """The server's call-records API as the level reads it: ``ended_call_records``."""

    def __init__(self, records: dict[str, dict[str, Any] | None]):
        self.records = records

    def ended_call_records(self, call_ids: list[str], timeout: float = 15) -> dict[str, dict[str, Any] | None]:
        return {c: self.records.get(c) for c in call_ids}


def test_a_level_counts_each_caller_by_its_call_id_and_lists_the_calls_not_as_expected():
    results = [{"call_id": "a"}, {"call_id": "b"}, {"call_id": None}, {"call_id": "d"}]
    server = Records({
        "a": record(GREETING, caller("Where is my order?", "order_status"), ASKS_PHONE),
        "b": record(GREETING, caller("Where is my border?", "order_status"), ASKS_PHONE),
        "d": record(GREETING, caller("Purple monkey dishwasher on the moon.", "out_of_scope"), NOT_UNDERSTOOD),
    })
    out = concurrent.understood(results, server)
    assert {k: out[k] for k in ("records", "transcribed_as_said", "transcript_wer_max", "intent_right",
                                "reply_asks_identity")} == {
        "records": 3, "transcribed_as_said": 1, "transcript_wer_max": 1.5, "intent_right": 2, "reply_asks_identity": 2}
    assert out["transcript_wer_mean"] == round((0 + 0.25 + 1.0 + 1.5) / 4, 3)
    assert [f["call"] for f in out["not_as_expected"]] == [1, 2, 3]  # the call that never connected is the third
    assert out["not_as_expected"][2]["intents"] == ["out_of_scope"]
