"""``voicebot eval frustration PATH``: ROC AUC, F1 and confusion matrix of the frustration score on labelled clips."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from voicebot.cli.common import config_option
from voicebot.cli.prosody import prosody_config


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _matrix(m: list[list[int]]) -> list[str]:
    return [
        "                 predicted calm  predicted frustrated",
        f"    neutral/calm {m[0][0]:>14}  {m[0][1]:>20}",
        f"    angry/frust. {m[1][0]:>14}  {m[1][1]:>20}",
    ]


@click.command("frustration")
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Score counted as frustrated for F1 and the confusion matrix (default: the config's 'annoyed' level).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@config_option
def eval_frustration(path: str, threshold: float | None, as_json: bool, config_path: str | None) -> None:
    """Score labelled clips in PATH (a folder, or a TSV of file<TAB>label<TAB>speaker).

    Reports the score alone (speaker-independent) and against each speaker's baseline built,
    leave-one-out, from all of that speaker's other clips (label-blind)."""
    from audio.evaluation import EvaluationInputError, evaluate_frustration, load_labelled_clips

    cfg = prosody_config(config_path)
    try:
        clips, notes = load_labelled_clips(path)
        report: dict[str, Any] = evaluate_frustration(clips, cfg, threshold)
    except EvaluationInputError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    report["path"] = path
    report["notes"] = notes
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return

    click.echo(
        f"{path}: {report['clips']} clips ({report['positive']} angry/frustrated, {report['negative']} neutral/calm), "
        f"{report['speakers']} speakers; threshold {report['threshold']:.2f}"
    )
    for title, key in (
        ("speaker-independent", "speaker_independent"),
        ("baseline-normalised", "baseline_normalised"),
    ):
        r = report[key]
        click.echo(
            f"  {title}: ROC AUC {_num(r['roc_auc'])}, F1 {_num(r['f1'])} "
            f"(precision {_num(r['precision'])}, recall {_num(r['recall'])})"
        )
        for line in _matrix(r["confusion_matrix"]):
            click.echo(line)
    click.echo(f"  baseline: {report['baseline_scheme']}")
    for note in [*notes, *report["unreadable"]]:
        click.echo(f"  note: {note}")
