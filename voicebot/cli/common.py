"""What every command shares: the --config option and loading settings with a readable error."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from voicebot.config import ConfigError, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="voicebot.yaml to use (default: $VOICEBOT_CONFIG, else ./voicebot.yaml, else built-in defaults).",
    )(func)


def settings_or_exit(config_path: str | None) -> Settings:
    """Load the settings; on a bad file print every problem and exit 2 instead of a traceback."""
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
