"""Entities in normalised text, dates resolved against an injected day."""

from __future__ import annotations

from datetime import date

import pytest

from dialogs.nlu.entities import Address, extract, find_entities, parse_address, parse_place
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
    assert got["address"] == Address("22 Acacia Avenue", "London", None, "SW1A 1AA")
    assert got["postcode"] == "SW1A 1AA"
    # digits inside an address or a date are not an order number
    assert "order_number" not in entities("i live at 22 acacia avenue")
    assert "order_number" not in entities("i was born in nineteen eighty five on march third")


def test_phone_and_pin_by_length_and_context() -> None:
    assert entities("call me on oh seven seven double oh one two three four five six")["phone"] == "07700123456"
    assert entities("my pin is one two three four")["pin"] == "1234"


@pytest.mark.parametrize("text", ["order 4 5 2 8 1", "45281.", "4-5-2-8-1", "it's 45281. Thanks", "four five two eight one"])
def test_an_order_number_said_or_written_in_any_usual_form(text: str) -> None:
    assert entities(text)["order_number"] == "45281"
    found = extract(normalize(text), "order_number", TODAY)
    assert found is not None and found.value == "45281"


@pytest.mark.parametrize("text", ["452.2.1.", "4.5.2.8.1", "it is 452.21"])
def test_a_number_split_by_dots_into_pieces_is_no_order_number(text: str) -> None:
    # "452.2.1." is a garbled reading: no piece of it is the caller's order number, in a sentence or as an answer.
    assert "order_number" not in entities(text)
    assert extract(normalize(text), "order_number", TODAY) is None


@pytest.mark.parametrize(
    ("text", "slot_type", "value"),
    [
        ("uh it's four five two eight one", "order_number", "45281"),
        ("yeah sure", "yes_no", True),
        ("no that's wrong", "yes_no", False),
        ("nope", "yes_no", False),
        ("it's five elm road", "address", Address("5 Elm Road")),
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # typed with commas, and as speech recognition gives it: without punctuation, numbers as words
        ("21 Oak Street, Chicago, 60614", Address("21 Oak Street", "Chicago", None, "60614")),
        ("21 oak street chicago 60614", Address("21 Oak Street", "Chicago", None, "60614")),
        ("twenty one oak street chicago six zero six one four", Address("21 Oak Street", "Chicago", None, "60614")),
        ("12 Elm Road Springfield Illinois 62704", Address("12 Elm Road", "Springfield", "IL", "62704")),
        ("it's 21 Oak St., Chicago, IL 60614", Address("21 Oak Street", "Chicago", "IL", "60614")),
        ("350 west 31st street new york new york 10001", Address("350 West 31st Street", "New York", "NY", "10001")),
        ("my new address is 5 park avenue boston", Address("5 Park Avenue", "Boston")),
        ("21 oak street and where is my order 45281", Address("21 Oak Street")),
        ("12 main", Address("12 Main")),
        ("somewhere nice", None),
    ],
)
def test_parse_address_into_its_parts(text: str, expected: Address | None) -> None:
    assert parse_address(text) == expected


def test_an_address_reports_its_city_and_postcode_and_leaves_no_order_number() -> None:
    got = entities("i moved to 21 oak street chicago 60614")
    assert got["postcode"] == "60614" and got["city"] == Address("", "Chicago")
    assert "order_number" not in got
    assert str(got["address"]) == "21 Oak Street, Chicago, 60614"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chicago", Address("", "Chicago")),
        ("springfield illinois 62704", Address("", "Springfield", "IL", "62704")),
        ("it's new york", Address("", "New York")),
        ("yes", None),
        ("45281", None),
    ],
)
def test_parse_place_answers_and_the_city(text: str, expected: Address | None) -> None:
    assert parse_place(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1985-04-12", "1985/04/12", "1985.04.12", "04/12/1985", "04-12-1985", "4/12/85", "April 12 1985",
        "April 12, 1985", "April 12th 1985", "12 April 1985", "12th of April 1985", "the 12th of April, 1985",
        "april twelfth nineteen eighty five", "the twelfth of april nineteen eighty five",
        "born on the twelfth of april nineteen eighty-five",
    ],
)
def test_a_date_in_every_common_form(text: str) -> None:
    found = extract(normalize(text), "date", TODAY)
    assert found is not None and found.value == date(1985, 4, 12)
    assert not {"order_number", "pin", "phone", "postcode"} & set(entities(text))


def test_numeric_dates_are_month_first_unless_the_first_number_is_a_day() -> None:
    assert entities("12/04/1985")["date"] == date(1985, 12, 4)  # the US order: December 4
    assert entities("13/04/1985")["date"] == date(1985, 4, 13)  # no 13th month: a day first
    assert entities("the twelfth of april")["date"] == date(2024, 4, 12)  # without a year: the last one before today


def test_a_date_is_never_an_order_number_pin_or_postcode() -> None:
    for slot_type in ("order_number", "pin", "postcode"):
        assert extract(normalize("1985-04-12"), slot_type, TODAY) is None, slot_type
        assert extract(normalize("my birthday is 04/12/1985"), slot_type, TODAY) is None, slot_type
    assert entities("my pin is 12345678")["pin"] == "12345678"
