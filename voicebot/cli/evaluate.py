"""``voicebot eval ...``: accuracy reports. Each evaluation lives in its own module."""

from __future__ import annotations

import importlib
import importlib.util

import click

EVALUATIONS = {
    "nlu": "voicebot.cli.eval_nlu:eval_nlu",
    "spoken": "voicebot.cli.eval_spoken:eval_spoken",
    "frustration": "voicebot.cli.eval_frustration:eval_frustration",
    "knowledge": "voicebot.cli.eval_knowledge:eval_knowledge",
}


class _LazyEval(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, t in EVALUATIONS.items() if importlib.util.find_spec(t.split(":")[0]))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = EVALUATIONS.get(cmd_name)
        if not target or not importlib.util.find_spec(target.split(":")[0]):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group("eval", cls=_LazyEval)
def eval_group() -> None:
    """Measure accuracy on labelled data (NLU intents, frustration from audio, knowledge answers)."""
