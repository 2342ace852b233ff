"""Text handling of the shared models: what Piper is fed, what counts as no speech, leading silence."""

from __future__ import annotations

import numpy as np

from voicebot.pipeline.shared import _trim_leading_silence, is_non_speech, speech_chunks, split_sentences


def test_sentences_split_at_sentence_ends_only():
    assert split_sentences("Hello there. How are you? Fine!") == ["Hello there.", "How are you?", "Fine!"]
    assert split_sentences("Order 12.5 is here.") == ["Order 12.5 is here."]
    assert split_sentences("   ") == []


def test_a_long_first_sentence_is_cut_at_its_first_clause_break():
    text = "Of course, I can check the status of order one two three for you right now. Anything else?"
    chunks = speech_chunks(text)
    assert chunks[0] == "Of course,"
    assert chunks[-1] == "Anything else?"
    assert " ".join(chunks) == text


def test_short_first_sentence_is_not_cut():
    assert speech_chunks("Yes, done. Bye.") == ["Yes, done.", "Bye."]


def test_whisper_noise_inventions_are_not_speech():
    for text in ["", "  ", "[BLANK_AUDIO]", "(music)", "you", " You. "]:
        assert is_non_speech(text), text
    for text in ["bye", "thank you", "Where is my order?", "yes"]:
        assert not is_non_speech(text), text


def test_leading_silence_is_trimmed_but_the_onset_kept():
    samples = np.concatenate([np.zeros(2000, np.int16), np.full(100, 5000, np.int16)])
    trimmed = _trim_leading_silence(samples, keep=220)
    assert len(trimmed) == 320
    assert trimmed[220] == 5000
    silent = np.zeros(50, np.int16)
    assert len(_trim_leading_silence(silent)) == 50


def test_end_of_turn_waits_longer_for_a_transcript_that_trails_off():
    from voicebot.pipeline.turns import TurnParams, end_of_turn_silence

    p = TurnParams()
    assert end_of_turn_silence("Where is my order?", p) == p.end_of_turn_s
    assert end_of_turn_silence("I have a question about my bill", p) == p.end_of_turn_unpunctuated_s
    for trailing in ["I want to check my order and", "I want to check my order and...", "Well,", "", "my"]:
        assert end_of_turn_silence(trailing, p) == p.end_of_turn_incomplete_s, trailing
    assert p.end_of_turn_s < p.end_of_turn_unpunctuated_s < p.end_of_turn_incomplete_s


def test_whisper_repetition_loops_are_recognised():
    from voicebot.pipeline.shared import _looped

    assert _looped("17 Baker Street, London 17 Baker Street, London 17 Baker Street, London")
    assert not _looped("No, no, I want to check my order, not the order of my friend.")
