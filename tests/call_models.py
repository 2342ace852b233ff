"""The speech recogniser of the tests about call flow (SIP and WebRTC calls, transfers, queues, faults,
dashboards, browsers, the cluster): Whisper tiny.en. They need *a* transcript of clear synthesised speech, not
the best one, and tiny.en takes about 2.5x less CPU per utterance than the product's default (base). Tests of
recognition itself (quality, biasing, confidence: test_stt, test_eval_spoken, test_stt_memory) keep the default.

    ServerProcess(folder, {"models": CALL_FLOW_MODELS, ...})
    Settings(models=CALL_FLOW_MODELS, ...)
    (folder / "voicebot.yaml").write_text(CALL_FLOW_MODELS_YAML + ...)
"""

from __future__ import annotations

from typing import Any

# voicebot.yaml's `models:` section.
CALL_FLOW_MODELS: dict[str, Any] = {"stt": {"model": "tiny.en"}}
CALL_FLOW_MODELS_YAML = "models:\n  stt:\n    model: tiny.en\n"
