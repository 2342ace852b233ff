"""What every command shares: the --config option, loading settings with a readable error, and --today's day;
and the options the evaluation commands share (--domain, --json, --today, --errors)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import click

from voicebot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from voicebot.pipeline.shared import SharedModels

F = TypeVar("F", bound=Callable[..., Any])

# The day the relative dates of tests/data/nlu_dev.tsv ("yesterday", "last tuesday") were written against.
DEV_TODAY = "2025-01-15"


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="voicebot.yaml to use (default: $VOICEBOT_CONFIG, else ./voicebot.yaml, else built-in defaults).",
    )(func)


def domain_option(func: F) -> F:
    return click.option(
        "--domain",
        "domain_path",
        type=click.Path(exists=True),
        default=None,
        help="Domain folder or file (default: the configured one, else the bundled retail demo).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")(func)


def dev_today_option(func: F) -> F:
    """``--today`` for a command that reads a TSV of the dev sets: their day unless told otherwise."""
    return click.option(
        "--today",
        "today_text",
        default=DEV_TODAY,
        show_default=True,
        help="Resolve relative dates in the file against this day (YYYY-MM-DD).",
    )(func)


def errors_option(func: F) -> F:
    return click.option(
        "--errors", "show_errors", default=20, show_default=True, help="How many misparsed rows to list."
    )(func)


def parse_today(value: str) -> date:
    """``--today``'s value (YYYY-MM-DD) as a date; anything else is a usage error naming the option."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2025-01-15", param_hint="--today") from None


def settings_or_exit(config_path: str | None) -> Settings:
    """Load the settings; on a bad file print every problem and exit 2 instead of a traceback."""
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def models_or_exit(settings: Settings) -> SharedModels:
    """Load Whisper and Piper (a few seconds); on a missing or altered model print which and exit 2."""
    from voicebot.models import ModelError
    from voicebot.pipeline.shared import SharedModels

    try:
        return SharedModels.load(settings)
    except ModelError as exc:
        click.echo(f"cannot load the speech models: {exc}", err=True)
        sys.exit(2)
