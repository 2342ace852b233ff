"""``voicebot nlu``: what the NLU understands of a sentence, as JSON."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from voicebot.cli.common import config_option, domain_option, parse_today, settings_or_exit

if TYPE_CHECKING:
    from dialogs.nlu import NLU


def load_nlu(config_path: str | None, domain_path: str | None) -> NLU:
    """The NLU trained on the configured (or given) domain; exits with a readable message on a bad domain."""
    from dialogs.domain import DomainError, load_domain
    from dialogs.nlu import NLU

    settings = settings_or_exit(config_path)
    path = domain_path or settings.resolve(settings.domain.path)
    try:
        domain = load_domain(path)
        from dialogs.knowledge.dialog import Knowledge

        # As the product runs it: with the knowledge base's ``faq`` act when the domain has one.
        return NLU.train(domain, threshold=settings.nlu.threshold, max_intents=settings.nlu.max_intents,
                         features=settings.nlu.features, questions=Knowledge.for_domain(domain))
    except DomainError as exc:
        click.echo(f"cannot load the domain:\n{exc}", err=True)
        sys.exit(2)
    except ValueError as exc:
        click.echo(f"cannot train the NLU: {exc}", err=True)
        sys.exit(2)


@click.command("nlu")
@click.argument("text", required=False)
@click.option("--jsonl", is_flag=True, help="Read one utterance per line from stdin, print one JSON object per line.")
@click.option("--dtmf", default=None, help="Keypad digits that came with the utterance, e.g. 45281#.")
@click.option("--today", "today_text", default=None, help="Resolve relative dates against this day (YYYY-MM-DD).")
@domain_option
@config_option
def nlu(text: str | None, jsonl: bool, dtmf: str | None, today_text: str | None, domain_path: str | None,
        config_path: str | None) -> None:
    """Print the intents (with confidence and slots) the NLU finds in TEXT, as JSON.

    \b
    voicebot nlu "I moved, so update my address and tell me where my order is"
    printf 'where is my order\\nyes\\n' | voicebot nlu --jsonl
    """
    if text is None and not jsonl:
        raise click.UsageError("give TEXT, or --jsonl to read utterances from stdin")
    if text is not None and jsonl:
        raise click.UsageError("give either TEXT or --jsonl, not both")
    today = parse_today(today_text) if today_text is not None else None
    model = load_nlu(config_path, domain_path)
    if not jsonl:
        result = model.parse(text or "", dtmf=dtmf, today=today)
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    for line in sys.stdin:
        result = model.parse(line.rstrip("\r\n"), dtmf=dtmf, today=today)
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False))
        sys.stdout.flush()
