"""ASR-style text normalisation: number words, homophones, fillers, spelled e-mails and postcodes."""

from __future__ import annotations

import pytest

from dialogs.nlu.normalize import normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("four five two eight one", "45281"),
        ("twelve thirty four", "1234"),
        ("forty five two eight one", "45281"),
        ("nineteen eighty five", "1985"),
        ("one hundred and five", "105"),
        ("two thousand twenty four", "2024"),
        ("double five three", "553"),
        ("nine oh two one oh", "90210"),
        ("my order number is for five two eight one", "my order number is 45281"),
        ("four five for two", "4542"),
    ],
)
def test_number_words_become_digits(text: str, expected: str) -> None:
    assert normalize(text).text == expected


def test_words_that_only_sound_like_digits_stay_words() -> None:
    assert normalize("i need a new one").text == "i need a new one"
    assert normalize("oh no").text == "oh no"
    assert normalize("a present for my mum").text == "a present for my mum"
    assert normalize("i ordered something for two people").text == "i ordered something for 2 people"


def test_fillers_case_punctuation_and_contractions() -> None:
    norm = normalize("Uh, I DON'T want to cancel. Um, where's my order?")
    assert norm.text == "i do not want to cancel where is my order"
    # punctuation is kept as clause breaks: before "where"
    assert norm.tokens.index("where") in norm.breaks
    assert normalize("i dont want my pass word").text == "i do not want my password"


def test_spelled_email_is_joined() -> None:
    assert normalize("j dot doe at example dot com").text == "j.doe@example.com"
    assert normalize("my email is john underscore smith at gmail dot co dot uk please").text == (
        "my email is john_smith@gmail.co.uk please"
    )
    assert normalize("send it to Jane.Doe@Example.com").text == "send it to jane.doe@example.com"
    # "at" without a domain after it is just a word
    assert normalize("i am at home").text == "i am at home"


def test_spelled_uk_postcode_is_joined() -> None:
    assert normalize("the postcode is s w one a one a a").text == "the postcode is sw1a 1aa"
    assert normalize("SW1A 1AA").text == "sw1a 1aa"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "😀🎉", "x" * 10_000, "'; DROP TABLE orders; --", "Où est ma commande ?", "我的订单在哪里",
     "\x00\x07\n\t", "@@@ ... ,,,", "at dot at dot com", "- - -"],
)
def test_never_raises(text: str) -> None:
    norm = normalize(text)
    assert norm.text == " ".join(norm.tokens)
    assert len(norm.text) <= 2000 + 10


def test_digits_separated_by_commas_are_one_number() -> None:
    # how Whisper writes a spoken order number
    assert normalize("order 3, 9, 4, 4, 1 please").text == "order 39441 please"
    assert normalize("order four, five, two, eight, one").text == "order 45281"


@pytest.mark.parametrize(
    ("whisper", "expected"),
    [
        ("The number is 55,123.", "the number is 55123"),
        ("I want to send back order number 1234.5.", "i want to send back order number 12345"),
        ("Order double 4321.", "order 44321"),
        ("My email is Sam at example.net.", "my email is sam@example.net"),
        ("Reset password for Mary underscore K at example.co.uk", "reset password for mary_k@example.co.uk"),
        ("bob.jones at mail.com", "bob.jones@mail.com"),
        ("London N19GU.", "london n1 9gu"),
        ("It costs 12.50.", "it costs 12.50"),
    ],
)
def test_whisper_formatting(whisper: str, expected: str) -> None:
    assert normalize(whisper).text == expected


@pytest.mark.parametrize(
    ("whisper", "expected"),
    [
        ("High, where's my delivery?", "hi where is my delivery"),
        ("High.", "hi"),
        ("High charges on my card this month", "high charges on my card this month"),
        ("the bill is high", "the bill is high"),
    ],
)
def test_a_turn_opening_high_is_the_greeting(whisper: str, expected: str) -> None:
    assert normalize(whisper).text == expected
