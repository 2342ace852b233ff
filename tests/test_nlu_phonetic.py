"""The phonetic key of English words (dialogs.nlu.phonetic): Metaphone's consonant skeleton."""

from __future__ import annotations

import pytest

from dialogs.nlu.phonetic import metaphone, sounds


@pytest.mark.parametrize(
    ("word", "key"),
    [
        ("address", "ATRS"), ("dress", "TRS"), ("invoice", "ANFS"), ("voice", "FS"),
        ("password", "PSWRT"), ("sword", "SWRT"),
        ("charged", "XRJT"), ("check", "XK"), ("school", "SKL"), ("special", "SPXL"), ("cancel", "KNSL"),
        ("science", "SNS"), ("accept", "AKSPT"),
        ("phone", "FN"), ("nation", "NXN"), ("session", "SXN"), ("shipping", "XPNK"), ("thanks", "0NKS"),
        ("watch", "WX"), ("edge", "AJ"), ("agent", "AJNT"), ("dumb", "TM"), ("box", "BKS"), ("xerox", "SRKS"),
        ("knight", "NT"), ("gnome", "NM"), ("write", "RT"), ("sign", "SN"), ("signed", "SNT"), ("ghost", "KST"),
        ("where", "WR"), ("wear", "WR"), ("why", "W"), ("hello", "HL"), ("oh", "A"), ("yes", "YS"),
        ("billed", "BLT"), ("built", "BLT"), ("refund", "RFNT"), ("i", "A"),
    ],
)
def test_words_key_to_their_consonant_skeleton(word: str, key: str) -> None:
    assert metaphone(word) == key


def test_sound_alikes_share_a_key_and_case_and_marks_do_not_matter() -> None:
    assert metaphone("Where's") == metaphone("wears") == "WRS"
    assert metaphone("to") == metaphone("too") == "T" and metaphone("two") == "TW"  # Metaphone sounds the W
    assert metaphone("Knight") == metaphone("night")


def test_words_without_letters_have_no_key() -> None:
    assert metaphone("45281") == metaphone("") == metaphone("-") == ""
    assert sounds("my order 45281 is late") == "M ARTR AS LT"


def test_a_clause_reads_as_the_keys_of_its_words() -> None:
    assert sounds("change my address") == "XNJ M ATRS"
    assert sounds("change my dress") == "XNJ M TRS"
    assert sounds("my invoice looks wrong") == "M ANFS LKS RNK"
    assert sounds("") == ""
