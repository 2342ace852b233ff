"""``voicebot config check [FILE]`` and ``voicebot config show``."""

from __future__ import annotations

import sys

import click
import yaml

from voicebot.config import ConfigError, find_config, load_settings


@click.group()
def config() -> None:
    """Check or show the configuration."""


@config.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def check(file: str | None) -> None:
    """Validate FILE (default: $VOICEBOT_CONFIG or ./voicebot.yaml) and the files it points to.

    Prints every problem with its key path and exits non-zero if there is any."""
    from voicebot.validation import check_settings, warn_settings

    source = str(find_config(file) or "built-in defaults")
    try:
        settings = load_settings(file)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    for key, message in warn_settings(settings):
        click.echo(f"{source}: warning: {key}: {message}", err=True)
    problems = check_settings(settings)
    if problems:
        click.echo(str(ConfigError(source, problems)), err=True)
        sys.exit(1)
    click.echo(f"{source}: OK")


@config.command("show")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
def show(config_path: str | None) -> None:
    """Print the effective configuration (file + environment + defaults) as YAML."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    click.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
