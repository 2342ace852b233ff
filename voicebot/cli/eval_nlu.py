"""``voicebot eval nlu FILE``: intent-set exact match, per-intent precision/recall and slot F1."""

from __future__ import annotations

import json
import sys

import click

from voicebot.cli.common import (
    config_option,
    dev_today_option,
    domain_option,
    errors_option,
    json_option,
    parse_today,
)
from voicebot.cli.nlu import load_nlu


@click.command("nlu")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@dev_today_option
@errors_option
@domain_option
@config_option
def eval_nlu(file: str, as_json: bool, today_text: str, show_errors: int, domain_path: str | None,
             config_path: str | None) -> None:
    """Measure the NLU on FILE: TSV with a header line, `utterance<TAB>intents,comma,separated`, and an
    optional third column of gold slots `slot=value;slot=value`."""
    from dialogs.nlu.evaluation import DatasetError, evaluate, format_report, load_examples

    today = parse_today(today_text)
    try:
        examples = load_examples(file)
    except DatasetError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    model = load_nlu(config_path, domain_path)
    report = evaluate(model, examples, today=today, max_errors=max(show_errors, 0) if not as_json else 1000)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_report(report, show_errors=show_errors))
