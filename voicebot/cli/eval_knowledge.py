"""``voicebot eval knowledge FILE``: how often retrieval finds the right entry or rightly says "I don't know";
with ``--through-nlu``, how often a caller hears the right answer (or no wrong one)."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from voicebot.cli.common import config_option, domain_option, json_option, settings_or_exit


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


@click.command("knowledge")
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
@click.option("--encoder", type=click.Choice(["sentence", "tfidf"]), default="sentence", show_default=True,
              help="The packaged sentence encoder, or TF-IDF over character n-grams.")
@click.option("--threshold", type=float, default=None, help="Score below which the answer is \"I don't know\" "
              "(default: the encoder's chosen one).")
@click.option("--errors", "show_errors", default=20, show_default=True, help="How many wrong rows to list.")
@click.option("--through-nlu", is_flag=True, help="Ask each question as a caller's first turn: the domain's NLU "
              "first, as in a call (a request goes to its flow), then the knowledge base; an unanswerable question "
              "is right unless an entry answers it.")
@domain_option
@config_option
def eval_knowledge(file: str, as_json: bool, encoder: str, threshold: float | None, show_errors: int,
                   through_nlu: bool, domain_path: str | None, config_path: str | None) -> None:
    """Measure knowledge retrieval on FILE: TSV with a header line, `question<TAB>entry id`, where the id `-`
    marks a question the knowledge base does not answer."""
    if through_nlu and (encoder != "sentence" or threshold is not None):
        raise click.UsageError("--through-nlu measures the bot as it runs: without --encoder and --threshold")
    from dialogs.domain import DomainError, load_domain
    from dialogs.knowledge import KnowledgeBase, Retriever, load_knowledge
    from dialogs.knowledge.dialog import OUT_OF_SCOPE
    from dialogs.knowledge.evaluation import (
        QuestionSetError,
        evaluate,
        evaluate_heard,
        format_report,
        heard_in_a_call,
        load_questions,
    )

    settings = settings_or_exit(config_path)
    try:
        domain = load_domain(domain_path or settings.resolve(settings.domain.path))
    except DomainError as exc:
        click.echo(f"cannot load the domain:\n{exc}", err=True)
        sys.exit(2)
    if domain.knowledge is None:
        click.echo("the domain names no knowledge folder (add `knowledge: FOLDER` to the domain file)", err=True)
        sys.exit(2)
    kb: KnowledgeBase = load_knowledge(domain.knowledge)
    try:
        questions = load_questions(file, set(kb.ids()))
    except QuestionSetError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    oos = domain.intents.get(OUT_OF_SCOPE)
    negatives = list(oos.examples) if oos is not None else []
    through = "nlu" if through_nlu else "retriever"
    with tempfile.TemporaryDirectory(prefix="voicebot-eval-") as scratch:
        rss0, t0 = _rss_mb(), time.perf_counter()
        if through_nlu:
            engine = _engine_on_scratch_database(settings, domain_path, Path(scratch))
            assert engine.knowledge is not None  # the domain names a knowledge folder (checked above)
            threshold_used = engine.knowledge.retriever.threshold
            run = lambda progress: evaluate_heard(heard_in_a_call(engine), questions,  # noqa: E731
                                                  threshold=threshold_used, progress=progress)
        else:
            if encoder == "tfidf":
                retriever = Retriever.with_tfidf(kb, threshold, negatives)
            else:
                retriever = Retriever(kb, threshold=threshold, negatives=negatives)
            run = lambda progress: evaluate(retriever, questions, progress=progress)  # noqa: E731
        load = {"seconds": round(time.perf_counter() - t0, 2), "rss_mb": round(_rss_mb() - rss0, 1)}
        if sys.stderr.isatty() and not as_json:
            with click.progressbar(length=len(questions), label="questions", file=sys.stderr) as bar:
                report = run(bar.update)
        else:
            report = run(None)
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "through": through, "encoder": encoder, "load": load}, indent=2))
    else:
        click.echo(format_report(report, encoder, show_errors=show_errors, through=through))
        built = "dialog engine (NLU, knowledge base, scratch database)" if through_nlu else "encoder and index"
        click.echo(f"{built} built in {load['seconds']} s, peak memory +{load['rss_mb']} MB")


def _engine_on_scratch_database(settings: Any, domain_path: str | None, scratch: Path) -> Any:
    """The dialog engine as configured, on a scratch copy of the demo database: calls made while measuring are
    stored there, never in the real one."""
    from dialogs.engine import DialogEngine

    path = Path(domain_path).resolve() if domain_path else settings.resolve(settings.domain.path)
    database = settings.database.model_copy(update={"url": f"sqlite:///{scratch / 'eval.db'}", "seed_demo": True})
    measured = settings.model_copy(update={"database": database,
                                           "domain": settings.domain.model_copy(update={"path": path})})
    return DialogEngine.from_settings(measured)
