"""Checks of a loaded config beyond its schema: do the files and services it points to work?

Each check returns ``(key path, message)`` problems so ``voicebot config check`` can list them all.
"""

from __future__ import annotations

from collections.abc import Callable

from voicebot.config import Settings

Check = Callable[[Settings], list[tuple[str, str]]]


def _domain(settings: Settings) -> list[tuple[str, str]]:
    from dialogs.domain import DomainError, load_domain

    try:
        load_domain(settings.resolve(settings.domain.path))
    except DomainError as exc:
        return [("domain.path", f"{f}: {k}: {m}") for f, k, m in exc.problems]
    return []


def _database(settings: Settings) -> list[tuple[str, str]]:
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(settings.database.url)
    except ArgumentError as exc:
        return [("database.url", f"not a database URL: {exc}")]
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        from pathlib import Path

        folder = Path(url.database).expanduser().resolve().parent
        if not folder.exists():
            return [("database.url", f"the folder {folder} does not exist")]
    return []


def _queues(settings: Settings) -> list[tuple[str, str]]:
    from dialogs.domain import DomainError, load_domain
    from telephony.queue.config import check_queues

    try:
        domain = load_domain(settings.resolve(settings.domain.path))
    except DomainError:
        domain = None  # reported by _domain
    wanted = ({domain.default_queue} | {i.queue for i in domain.intents.values() if i.queue}) if domain else None
    return check_queues(settings.agents, settings.queues, wanted)


def _sip(settings: Settings) -> list[tuple[str, str]]:
    from telephony.config import check_sip, check_trunks

    return check_sip(settings.sip) + check_trunks(settings.trunks)


def _webrtc(settings: Settings) -> list[tuple[str, str]]:
    from voicebot.server.caller_token import CallerTokenError, secret_from_env

    try:
        secret_from_env(settings.webrtc.caller_token_secret_env)
    except CallerTokenError as exc:
        return [("webrtc.caller_token_secret_env", str(exc))]
    return []


def _routes(settings: Settings) -> list[tuple[str, str]]:
    """Per-number routes of trunks must name intents the domain has and the language it speaks."""
    from dialogs.domain import DomainError, load_domain

    routes = [(i, did, r) for i, t in enumerate(settings.trunks) for did, r in t.dids.items()]
    if not routes:
        return []
    try:
        domain = load_domain(settings.resolve(settings.domain.path))
    except DomainError:
        return []  # reported by _domain
    problems = []
    for i, did, route in routes:
        key = f"trunks.{i}.dids.{did}"
        if route.flow is not None and route.flow not in domain.intents:
            problems.append((f"{key}.flow", f"'{route.flow}' is not an intent of the domain"))
        if route.language != domain.language:
            problems.append((
                f"{key}.language",
                f"'{route.language}': the domain speaks '{domain.language}' (one language per domain for now)",
            ))
    return problems


def _models(settings: Settings) -> list[tuple[str, str]]:
    """The speech models must be where the config says (start-up would fail on them)."""
    from voicebot.models import ModelError, piper_voice_paths, whisper_source

    problems = []
    for key, find in (("models.stt.model", whisper_source), ("models.tts.voice", piper_voice_paths)):
        try:
            find(settings)
        except ModelError as exc:
            problems.append((key, str(exc)))
    return problems


CHECKS: list[Check] = [_domain, _database, _queues, _sip, _webrtc, _routes, _models]


def register(check: Check) -> Check:
    """Let another part of the app (models, SIP trunks) add its own check."""
    CHECKS.append(check)
    return check


def _sip_security(settings: Settings) -> list[tuple[str, str]]:
    from telephony.config import security_warnings

    return security_warnings(settings.sip, settings.trunks)


def _handoff_reaches_nobody(settings: Settings) -> list[tuple[str, str]]:
    from voicebot.transfer.desk import no_agents_warning

    warning = no_agents_warning(settings)
    return [("agents/queues", warning)] if warning else []


# Checks whose findings are worth a warning but leave a config usable.
WARNINGS: list[Check] = [_sip_security, _handoff_reaches_nobody]


def warn_settings(settings: Settings) -> list[tuple[str, str]]:
    """Settings that work but an operator should know about (printed by ``voicebot config check``)."""
    warnings: list[tuple[str, str]] = []
    for check in WARNINGS:
        warnings += check(settings)
    return warnings


def check_settings(settings: Settings) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for check in CHECKS:
        problems += check(settings)
    return problems
