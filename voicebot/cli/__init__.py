"""The ``voicebot`` command. Each sub-command lives in its own module and is imported only when used,
so ``voicebot nlu`` does not pay for loading the voice pipeline."""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

# command name -> "module:attribute". Groups (eval, db, gdpr, config) collect commands from several modules.
COMMANDS: dict[str, str] = {
    "config": "voicebot.cli.config_cmd:config",
    "chat": "voicebot.cli.chat:chat",
    "nlu": "voicebot.cli.nlu:nlu",
    "nlu-augment": "voicebot.cli.nlu_augment:nlu_augment",
    "db": "voicebot.cli.db:db",
    "gdpr": "voicebot.cli.gdpr:gdpr",
    "eval": "voicebot.cli.evaluate:eval_group",
    "prosody": "voicebot.cli.prosody:prosody",
    "serve": "voicebot.cli.serve:serve",
    "call": "voicebot.cli.call:call",
    "bench": "voicebot.cli.bench:bench",
    "dial": "voicebot.cli.dial:dial",
    "users": "voicebot.cli.users:users",
    "token": "voicebot.cli.token:token",
    "cluster": "voicebot.cli.cluster:cluster",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if _exists(COMMANDS[name]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _exists(target):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


def _exists(target: str) -> bool:
    return importlib.util.find_spec(target.split(":")[0]) is not None


@click.group(cls=LazyGroup)
@click.version_option(package_name="voicebot")
def cli() -> None:
    """voicebot: an on-premise voice bot for contact centers."""


def main() -> None:
    try:
        cli(prog_name="voicebot")
    except BrokenPipeError:
        sys.exit(0)
