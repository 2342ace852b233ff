"""The recogniser's doubt word by word in the NLU: the heard words' probabilities mapped onto the parser's tokens,
and a clause whose words were all heard unsurely adds no intent beside a clause heard surely (parser step 10).
Real NLU trained from the bundled domain; the transcripts are ones Whisper produced on the spoken dev set."""

from __future__ import annotations

from datetime import date

from dialogs.manager.doubt import unsure_request
from dialogs.nlu import NLU
from dialogs.nlu.heard import HeardWord, token_probabilities
from dialogs.nlu.normalize import normalize
from dialogs.nlu.parser import UNSURE_CLAUSE

TODAY = date(2025, 1, 15)
SURE = 0.95
UNSURE = round(UNSURE_CLAUSE / 3, 3)


def heard(text: str, unsure: set[str] = frozenset()) -> tuple[HeardWord, ...]:  # type: ignore[assignment]
    """``text`` as the recogniser's words (leading spaces, punctuation on the word before): the words in ``unsure``
    heard unsurely, the others surely."""
    out = []
    for k, word in enumerate(text.split(" ")):
        bare = word.strip(",.?!").lower()
        out.append(HeardWord(word if k == 0 else " " + word, UNSURE if bare in unsure else SURE))
    return tuple(out)


def test_each_token_takes_the_probability_of_the_word_it_comes_from() -> None:
    words = (HeardWord("I", 0.9), HeardWord(" don't", 0.8), HeardWord(" want", 0.7), HeardWord(" twenty", 0.6),
             HeardWord(" four,", 0.3), HeardWord(" um", 0.5), HeardWord(" boxes.", 0.2))
    tokens = normalize("".join(w.text for w in words)).tokens
    assert tokens == ["i", "do", "not", "want", "24", "boxes"]
    # "don't" gives two tokens; "twenty four" one, as unsure as its less sure word; the filler none
    assert token_probabilities(tokens, words) == [0.9, 0.8, 0.8, 0.7, 0.3, 0.2]


def test_a_token_no_word_explains_has_no_probability() -> None:
    assert token_probabilities(["where", "is", "it"], (HeardWord("Where", 0.9), HeardWord(" is", 0.8))) == \
        [0.9, 0.8, None]


def test_an_unsurely_heard_short_clause_adds_no_request_beside_a_sure_one(nlu: NLU) -> None:
    text = "Cous, my order, refund, ouch, yeah."  # Whisper's reading of "I want to know where my order is"
    assert [h.name for h in nlu.parse(text, today=TODAY).intents] == ["order_status", "return_item"]
    result = nlu.parse(text, today=TODAY, words=heard(text, unsure={"cous", "refund", "ouch", "yeah"}))
    assert [h.name for h in result.intents] == ["order_status"]
    assert [h.name for h in result.doubted] == ["return_item"]
    assert result.doubted[0].heard == UNSURE and result.intents[0].heard == SURE
    assert result.to_dict()["doubted"][0]["name"] == "return_item"


def test_clauses_heard_surely_keep_every_request(nlu: NLU) -> None:
    text = "Where is my order? And I want a refund for the charger."
    result = nlu.parse(text, today=TODAY, words=heard(text))
    assert [h.name for h in result.intents] == ["order_status", "return_item"]
    assert result.doubted == [] and all(h.heard == SURE for h in result.intents)


def test_the_surest_clause_stays_however_unsure(nlu: NLU) -> None:
    # A lone request heard unsurely is kept for the dialog to confirm (dialog.confirm_heard_below), not dropped.
    text = "Where is my order?"
    result = nlu.parse(text, today=TODAY, words=heard(text, unsure={"where", "is", "my", "order"}))
    assert [h.name for h in result.intents] == ["order_status"] and result.intents[0].heard == UNSURE
    assert result.doubted == []


def test_typed_text_parses_as_before(nlu: NLU) -> None:
    text = "Thank you, may we move."
    typed = nlu.parse(text, today=TODAY)
    assert [h.name for h in typed.intents] == ["thanks", "change_address"]
    assert typed.doubted == [] and all(h.heard is None for h in typed.intents)


def test_the_dialog_checks_the_request_of_a_turn_with_none_understood(nlu: NLU) -> None:
    """``doubt.unsure_request``: what the dialog asks about ("Just to check: ...?") when the NLU found no request to act
    on; the spoken evaluation counts it too."""
    text = "My S-word didn't work in Can you repair it?"  # Whisper's "my password isn't working can you reset it"
    parse = nlu.parse(text, today=TODAY, words=heard(text))
    assert [h.name for h in parse.intents] == ["out_of_scope"]
    hit = unsure_request(parse, nlu.domain, 0.2, nlu.threshold)
    assert hit is not None and hit.name == "reset_password" and 0.2 <= hit.confidence < nlu.threshold
    assert unsure_request(parse, nlu.domain, nlu.threshold, nlu.threshold) is None
    assert unsure_request(nlu.parse("where is my order", today=TODAY), nlu.domain, 0.2, nlu.threshold) is None
