"""Entities in normalised text, dates resolved against an injected day."""

from __future__ import annotations

from datetime import date

import pytest

from dialogs.nlu.entities import extract, find_entities
from dialogs.nlu.normalize import normalize

TODAY = date(2025, 1, 15)  # a Wednesday


def entities(text: str) -> dict[str, object]:
    return {e.type: e.value for e in find_entities(normalize(text), TODAY)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I ordered it last Tuesday", date(2025, 1, 14)),
        ("it came yesterday", date(2025, 1, 14)),
        ("on friday", date(2025, 1, 10)),
        ("two weeks ago", date(2025, 1, 1)),
        ("on the third", date(2025, 1, 3)),
        ("march third", date(2024, 3, 3)),  # no year: the latest such day not in the future
        ("the twenty-first of december", date(2024, 12, 21)),
        ("april twelfth nineteen eighty five", date(1985, 4, 12)),
        ("next monday", date(2025, 1, 20)),
    ],
)
def test_dates(text: str, expected: date) -> None:
    assert entities(text)["date"] == expected


def test_order_number_email_address_postcode_reason() -> None:
    got = entities("order four five two eight one arrived broken")
    assert got["order_number"] == "45281"
    assert got["reason"] == "damaged"
    assert entities("it's j dot doe at example dot com")["email"] == "j.doe@example.com"
    got = entities("i moved to twenty two acacia avenue london s w one a one a a")
    assert got["address"] == "22 Acacia Avenue London SW1A 1AA"
    assert got["postcode"] == "SW1A 1AA"
    # digits inside an address or a date are not an order number
    assert "order_number" not in entities("i live at 22 acacia avenue")
    assert "order_number" not in entities("i was born in nineteen eighty five on march third")


def test_phone_and_pin_by_length_and_context() -> None:
    assert entities("call me on oh seven seven double oh one two three four five six")["phone"] == "07700123456"
    assert entities("my pin is one two three four")["pin"] == "1234"


@pytest.mark.parametrize(
    ("text", "slot_type", "value"),
    [
        ("uh it's four five two eight one", "order_number", "45281"),
        ("yeah sure", "yes_no", True),
        ("no that's wrong", "yes_no", False),
        ("nope", "yes_no", False),
        ("it's five elm road", "address", "5 Elm Road"),
        ("the last Tuesday", "date", date(2025, 1, 14)),
        ("one two three four", "pin", "1234"),
        ("it was too small", "reason", "wrong_size"),
        ("my email is anna at test dot org", "email", "anna@test.org"),
    ],
)
def test_extract_answers_to_prompts(text: str, slot_type: str, value: object) -> None:
    found = extract(normalize(text), slot_type, TODAY)
    assert found is not None and found.value == value


def test_extract_finds_nothing_when_nothing_is_there() -> None:
    assert extract(normalize("i don't know"), "order_number", TODAY) is None
    assert extract(normalize("hmm"), "yes_no", TODAY) is None
    assert extract(normalize(""), "date", TODAY) is None
