"""The prosody tap in a call: a caller's turn audio becomes the dialog's frustration signal, and the bot reacts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from audio.config import ProsodyConfig
from audio.speech import espeak_ng
from dialogs.db.engine import ensure_database
from dialogs.domain import load_domain
from dialogs.engine import DialogEngine, EngineOptions, Turn, TurnSignals
from dialogs.nlu import NLU
from voicebot.pipeline.frames import CallerTurnFrame
from voicebot.pipeline.prosody import ProsodyTap

NOW = datetime(2026, 11, 20, 10, 30)


def pcm16(text: str, **voice) -> bytes:
    samples, rate = espeak_ng(text, sample_rate=16_000, **voice)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DialogEngine:
    domain = load_domain()
    db = ensure_database(f"sqlite:///{tmp_path_factory.mktemp('tap') / 'bot.db'}", seed_demo=True, now=NOW)
    return DialogEngine(domain, NLU.train(domain), db, EngineOptions(), clock=lambda: NOW, seed=3)


def test_calm_turns_stay_calm_and_an_agitated_angry_turn_is_flagged(engine):
    session = engine.new_call(channel="webrtc")
    session.start()
    tap = ProsodyTap(ProsodyConfig(), session)
    calm_lines = [
        "I would like to know where my order is.",
        "The number is four five two eight one.",
        "Yes, that is the one I mean.",
    ]
    calm = [tap(CallerTurnFrame(text=t, audio=pcm16(t))) for t in calm_lines]
    assert all(s.level == "calm" for s in calm), calm
    angry_text = "This is the third time I am calling, this is ridiculous, get me a manager"
    angry = tap(CallerTurnFrame(text=angry_text, audio=pcm16(angry_text, pitch=85, rate=260, amplitude=180)))
    assert angry.frustration > max(s.frustration for s in calm)
    assert angry.level in ("annoyed", "frustrated")
    assert angry.explanation
    assert set(angry.prosody) >= {"score", "level", "explanation", "deltas"}
    # The JSON stored with the caller's turn (and read back by the live-call registry) keeps today's keys.
    stored = angry.to_dict()
    assert list(stored) == ["frustration", "frustration_level", "frustration_trend", "frustration_explanation", "prosody"]
    assert TurnSignals.from_dict(stored) == angry


def test_frustrated_voice_makes_the_bot_calm_and_offer_a_human(engine):
    session = engine.new_call(channel="webrtc", caller_id="+15551230001")
    session.start()
    tap = ProsodyTap(ProsodyConfig(), session)
    text = "where is my order"
    session.handle(Turn(text=text, signals=tap(CallerTurnFrame(text=text, audio=pcm16(text)))))
    text = "this is the third time, it's ridiculous"
    signals = tap(CallerTurnFrame(text=text, audio=pcm16(text, pitch=90, rate=280, amplitude=190)))
    assert signals.level == "frustrated"
    reply = session.handle(Turn(text=text, signals=signals))
    assert reply.style == "calm"
    assert "colleague" in reply.text.lower()  # a human is offered
    assert reply.trace["frustration_explanation"] == signals.explanation
    text = "yes please"
    reply = session.handle(Turn(text=text, signals=tap(CallerTurnFrame(text=text, audio=pcm16(text)))))
    assert reply.action == "handoff"
    assert reply.handoff.reason == "frustration" and reply.handoff.priority > 0
    assert reply.handoff.frustration.max == pytest.approx(signals.frustration, abs=1e-3)


def test_garbage_and_empty_audio_give_a_defined_signal(engine):
    session = engine.new_call(channel="webrtc")
    session.start()
    tap = ProsodyTap(ProsodyConfig(), session)
    for audio in (b"", b"\x00", b"\x00\x00" * 1600, (np.full(16000, 32767, "<i2")).tobytes()):
        signals = tap(CallerTurnFrame(text="", audio=audio))
        assert 0.0 <= signals.frustration <= 1.0
        assert signals.level in ("calm", "annoyed", "frustrated")


def test_annoyed_caller_gets_calm_variants(engine, tmp_path: Path):
    session = engine.new_call(channel="webrtc")
    session.start()
    reply = session.handle(Turn(text="blah blah", signals=TurnSignals(frustration=0.5, level="annoyed")))
    assert reply.style == "calm"
    assert reply.action == "continue"  # annoyed is not yet a reason to offer a human
