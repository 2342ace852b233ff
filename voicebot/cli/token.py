"""``voicebot token caller NUMBER [--ttl 300]``: mint a signed caller ID for a browser caller.

For tests and integrators: the company's own site signs its logged-in customer's number the same way
(voicebot.server.caller_token documents the format) and opens the caller page with ``?caller_token=...``.
"""

from __future__ import annotations

import sys

import click

from voicebot.cli.common import config_option, settings_or_exit


@click.group()
def token() -> None:
    """Signed tokens for integrations."""


@token.command("caller")
@click.argument("number")
@click.option("--ttl", "ttl_s", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds the token stays valid.")
@config_option
def caller(number: str, ttl_s: int, config_path: str | None) -> None:
    """Print a token that makes a browser caller NUMBER (signed with webrtc.caller_token_secret_env's secret)."""
    from voicebot.server.caller_token import CallerTokenError, secret_from_env, sign

    settings = settings_or_exit(config_path)
    try:
        secret = secret_from_env(settings.webrtc.caller_token_secret_env)
        if secret is None:
            raise CallerTokenError("webrtc.caller_token_secret_env is not set in the config: browser callers "
                                   "are anonymous, there is nothing to sign with")
        click.echo(sign(number, secret, ttl_s))
    except CallerTokenError as exc:
        click.echo(f"voicebot token: {exc}", err=True)
        sys.exit(2)
