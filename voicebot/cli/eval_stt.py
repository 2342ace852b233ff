"""``voicebot eval stt FOLDER_OR_TSV``: word error rate of the product's STT path, clean and through G.711."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from voicebot.cli.common import config_option, settings_or_exit


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.0f} ms"


@click.command("stt")
@click.argument("path", type=click.Path(exists=True))
@click.option("--clean-only", is_flag=True, help="Skip the G.711 telephone-line pass (half the time).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write every clip's reference, reading, verdict, word errors and seconds to this JSON file.")
@config_option
def eval_stt(path: str, clean_only: bool, as_json: bool, save_path: str | None, config_path: str | None) -> None:
    """Transcribe recordings in PATH with the configured STT (models.stt) and report the word error rate,
    clean and through a G.711 mu-law 8 kHz telephone line, and the STT time per utterance.

    PATH is a folder of WAV/FLAC files with a transcripts.tsv (file<TAB>text per line, as eval-data/asr),
    or such a TSV anywhere (relative file names resolve against its folder). Numbers are compared as words
    ("42" = "forty two"), case and punctuation are ignored. --save lists every clip, to see which recordings were
    misheard."""
    from audio.evaluation import EvaluationInputError, load_transcribed_clips
    from dialogs.domain import DomainError
    from voicebot.models import ModelError, describe
    from voicebot.pipeline.shared import SharedModels
    from voicebot.stt_evaluation import CHANNELS, Recognised, evaluate_stt

    settings = settings_or_exit(config_path)
    settings.models.workers = 1
    try:
        clips = load_transcribed_clips(path)
    except EvaluationInputError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    try:
        shared = SharedModels.load(settings)
    except (ModelError, DomainError) as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    channels = ("clean",) if clean_only else CHANNELS
    stt = settings.models.stt
    every: list[Recognised] = []
    try:
        shared.transcribe(b"\0\0" * 16000)  # the first inference of a thread is slower: not counted
        if sys.stderr.isatty():
            with click.progressbar(length=len(clips), label="transcribing", file=sys.stderr) as bar:
                report: dict[str, Any] = evaluate_stt(shared, clips, channels, progress=bar.update, every=every)
        else:
            report = evaluate_stt(shared, clips, channels, every=every)
    finally:
        shared.close()
    if save_path:
        Path(save_path).write_text(json.dumps([r.record() for r in every], indent=1))
    report = {
        "path": path,
        "model": describe(settings)["whisper"],
        "decoding": {"beam_size": stt.beam_size, "window": stt.window, "bias": stt.bias},
        **report,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{path}: {len(clips)} recordings; model {report['model']}, beam {stt.beam_size}, "
               f"window {stt.window}, bias {'on' if stt.bias else 'off'}")
    for channel in channels:
        r = report[channel]
        click.echo(f"  {channel:5}  WER {_pct(r['wer'])}  ({r['clips']} clips, {r['rejected']} rejected as not "
                   f"speech/unclear)  STT median {_ms(r['stt_median_s'])}, p95 {_ms(r['stt_p95_s'])}")
        for name, group in report["by_length"][channel].items():
            if group is not None:
                label = "2 s or less" if name == "short" else "longer"
                click.echo(f"         {label:11}  WER {_pct(group['wer'])}  ({group['clips']} clips, "
                           f"{group['rejected']} rejected)")
    for worst in report["worst"]:
        click.echo(f"  worst ({worst['channel']}): said {worst['reference']!r}, heard {worst['heard']!r}")
    for note in report["unreadable"]:
        click.echo(f"  unreadable: {note}")
