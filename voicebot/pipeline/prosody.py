"""The prosody tap: each caller turn's audio -> prosodic features -> frustration score for the dialog.

The dialog stage calls the tap with the finished turn (its transcript and its 16 kHz audio) in the
inference pool; the result is the turn's :class:`~dialogs.manager.signals.TurnSignals`: the dialog engine
reads the score, level, trend and explanation, and the whole analysis is stored with the caller's turn in the
call record.
"""

from __future__ import annotations

import logging

from audio import pcm
from audio.config import ProsodyConfig
from audio.frustration import DialogSignals, FrustrationTracker
from audio.prosody.features import extract_features
from dialogs.manager.session import DialogSession
from dialogs.manager.signals import TurnSignals
from voicebot.pipeline.frames import CallerTurnFrame

log = logging.getLogger(__name__)


class ProsodyTap:
    """One per call: it keeps the caller's own baseline across the call's turns."""

    def __init__(self, config: ProsodyConfig, session: DialogSession):
        self.tracker = FrustrationTracker(config)
        self.session = session

    def _dialog_signals(self) -> DialogSignals:
        st = self.session.state
        return DialogSignals(
            reasks=st.current.reprompts if st.current is not None else 0,
            no_match_streak=st.no_match_streak,
            failed_verifications=st.verify_attempts if not st.verified else 0,
        )

    def __call__(self, frame: CallerTurnFrame) -> TurnSignals:
        features = None
        if frame.audio:
            samples = pcm.to_int16(frame.audio[: len(frame.audio) // pcm.SAMPLE_WIDTH * pcm.SAMPLE_WIDTH])
            if samples.size:
                features = extract_features(samples, pcm.SAMPLE_RATE)
        result = self.tracker.update(features, frame.text, self._dialog_signals())
        explanation = "; ".join(result.explanation)
        if result.level != "calm":
            log.info("call %s: caller %s (%.2f): %s", self.session.call_id, result.level, result.score, explanation)
        return TurnSignals(
            frustration=round(result.score, 4),
            level=result.level,
            trend="rising" if result.rising else "steady",
            explanation=explanation or None,
            prosody=result.to_dict(),
        )
