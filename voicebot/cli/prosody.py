"""``voicebot prosody FILE.wav``: the prosodic features and frustration score of one utterance."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from voicebot.cli.common import config_option, settings_or_exit

if TYPE_CHECKING:
    import numpy as np

    from audio.config import ProsodyConfig


def prosody_config(config_path: str | None) -> ProsodyConfig:
    """The ``prosody:`` section of the config, or the defaults while the section is not mounted."""
    from audio.config import ProsodyConfig

    section = getattr(settings_or_exit(config_path), "prosody", None)
    return section if isinstance(section, ProsodyConfig) else ProsodyConfig()


def read_audio_or_exit(path: str) -> tuple[np.ndarray, int]:
    """Mono float samples and rate of an audio file; a file that is not audio ends the command with a message."""
    import soundfile as sf

    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError) as exc:
        click.echo(f"{path}: cannot read as audio ({exc})", err=True)
        sys.exit(1)
    return samples.mean(axis=1), int(rate)


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


@click.command("prosody")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--baseline",
    "baseline_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An utterance of the same speaker sounding normal; repeat for several. Without: population reference.",
)
@click.option("--text", default="", help="What the caller said in FILE, for the word cues.")
@click.option("--reasks", type=click.IntRange(min=0), default=0, help="Times the bot re-asked so far.")
@click.option("--no-match", type=click.IntRange(min=0), default=0, help="Misunderstandings in a row.")
@click.option("--failed-verifications", type=click.IntRange(min=0), default=0, help="Failed identity checks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_option
def prosody(
    file: str,
    baseline_files: tuple[str, ...],
    text: str,
    reasks: int,
    no_match: int,
    failed_verifications: int,
    as_json: bool,
    config_path: str | None,
) -> None:
    """Print the prosodic features of FILE, its frustration score, level and explanation."""
    from audio.frustration import DialogSignals, score_turn
    from audio.prosody.baseline import SpeakerBaseline
    from audio.prosody.features import extract_features

    cfg = prosody_config(config_path)
    features = extract_features(*read_audio_or_exit(file))
    baseline = None
    if baseline_files:
        baseline = SpeakerBaseline.from_features(
            extract_features(*read_audio_or_exit(b)) for b in baseline_files
        )
    dialog = DialogSignals(reasks=reasks, no_match_streak=no_match, failed_verifications=failed_verifications)
    result = score_turn(features, baseline, text, dialog, cfg)

    if as_json:
        out = {
            "file": file,
            "features": features.to_dict(),
            **result.to_dict(),  # score, level, explanation, contributions, deltas, baseline, rising
            "baseline_files": list(baseline_files),
            "baseline_reference": {
                k: round(v, 4) for k, v in (baseline.reference() if baseline else {}).items()
            },
        }
        click.echo(json.dumps(out, indent=2))
        return

    f = features
    click.echo(
        f"{Path(file).name}: {f.duration_s:.2f} s, speech {f.speech_s:.2f} s, voiced {f.voiced_s:.2f} s "
        f"({f.sample_rate} Hz)"
    )
    rows = [
        ("pitch", f"{_fmt(f.pitch_hz, '.0f', ' Hz')} (level {_fmt(f.pitch_level_st, '+.1f', ' st')} re 100 Hz), "
                  f"range {_fmt(f.pitch_range_st, '.1f', ' st')}"),
        ("loudness", _fmt(f.loudness_db, ".1f", " dBFS")),
        ("speaking rate", _fmt(f.speaking_rate, ".1f", " syllables/s")),
        ("pause ratio", _fmt(f.pause_ratio, ".0%")),
        ("spectrum", f"centroid {_fmt(f.spectral_centroid_hz, '.0f', ' Hz')}, tilt "
                     f"{_fmt(f.spectral_tilt_db_oct, '.1f', ' dB/oct')}, high/low {_fmt(f.hf_ratio_db, '.1f', ' dB')}"),
        ("voice quality", f"jitter {_fmt(f.jitter_pct, '.2f', ' %')}, shimmer {_fmt(f.shimmer_pct, '.1f', ' %')}, "
                          f"periodicity {_fmt(f.periodicity, '.2f')}"),
    ]  # fmt: skip
    for name, value in rows:
        click.echo(f"  {name:<14} {value}")
    for issue in f.issues:
        click.echo(f"  note: {issue}")
    click.echo(f"frustration: {result.score:.2f} {result.level} (baseline: {result.baseline})")
    click.echo(f"  {result.summary or 'nothing pushed the score up'}")
