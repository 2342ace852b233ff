"""`voicebot prosody` and `voicebot eval frustration` on speech synthesised at test time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from audio.speech import espeak_ng, write_wav
from voicebot.cli import cli

SENTENCES = [
    "I would like to check on my order please.",
    "The order number is four five seven two.",
    "It was supposed to arrive on Monday.",
    "Can you tell me where the parcel is now?",
]
SPEAKERS = {"anna": "en-us+f3", "bob": "en-us"}
CALM = {"rate": 160, "pitch": 45, "amplitude": 80}
AGITATED = {"rate": 225, "pitch": 75, "amplitude": 170}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """angry/ and neutral/ folders plus labels.tsv: two voices, four sentences, calm and agitated."""
    root = tmp_path_factory.mktemp("frustration")
    rows = ["file\tlabel\tspeaker"]
    for speaker, voice in SPEAKERS.items():
        for i, text in enumerate(SENTENCES):
            for label, style in (("neutral", CALM), ("angry", AGITATED)):
                (root / label).mkdir(exist_ok=True)
                name = f"{label}/{speaker}_{i}.wav"
                write_wav(root / name, *espeak_ng(text, voice=voice, **style))
                rows.append(f"{name}\t{label}\t{speaker}")
    (root / "clips.tsv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(autouse=True)
def _default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Built-in defaults, not whatever voicebot.yaml the working directory holds.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VOICEBOT_CONFIG", raising=False)


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_prosody_json_scores_agitated_against_calm_baseline(clips: Path) -> None:
    result = _run(
        "prosody", str(clips / "angry/bob_0.wav"),
        "--baseline", str(clips / "neutral/bob_1.wav"), "--baseline", str(clips / "neutral/bob_2.wav"),
        "--text", "this is the third time", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["level"] == "frustrated" and out["score"] > 0.7
    assert out["baseline"] == "own (2 utterances)" and len(out["baseline_files"]) == 2
    assert out["features"]["pitch_level_st"] > out["baseline_reference"]["pitch_level_st"] + 2
    assert out["contributions"]["words:repetition"] > 0


def test_prosody_text_output_names_features_and_level(clips: Path) -> None:
    result = _run("prosody", str(clips / "neutral/anna_0.wav"))
    assert result.exit_code == 0, result.output
    assert "pitch" in result.output and "speaking rate" in result.output
    assert "frustration:" in result.output and "baseline: population" in result.output


def test_prosody_on_a_file_that_is_not_audio_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    result = _run("prosody", str(bad))
    assert result.exit_code == 1
    assert "cannot read as audio" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("source", ["clips.tsv", "."])
def test_eval_frustration_json_from_tsv_or_folder(clips: Path, source: str) -> None:
    result = _run("eval", "frustration", str(clips / source), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["clips"] == 16 and report["speakers"] == 2 and report["positive"] == 8
    for key in ("roc_auc", "f1", "roc_auc_baseline_normalised", "confusion_matrix_baseline_normalised"):
        assert key in report
    # Synthetic agitated speech differs from calm on every cue, so the ranking must be near perfect.
    assert report["roc_auc_baseline_normalised"] >= 0.9
    matrix = report["confusion_matrix_baseline_normalised"]
    assert sum(map(sum, matrix)) == 16


def test_eval_frustration_text_report(clips: Path) -> None:
    result = _run("eval", "frustration", str(clips / "clips.tsv"))
    assert result.exit_code == 0, result.output
    assert "speaker-independent: ROC AUC" in result.output
    assert "baseline-normalised: ROC AUC" in result.output and "predicted frustrated" in result.output


def test_eval_frustration_rejects_unusable_input(tmp_path: Path) -> None:
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("a.wav\thappy\tx\n")
    result = _run("eval", "frustration", str(tsv))
    assert result.exit_code == 1 and "no rows with a usable label" in result.output
    tsv.write_text("missing.wav\tangry\tx\n")
    result = _run("eval", "frustration", str(tsv))
    assert result.exit_code == 1 and "could be read" in result.output
