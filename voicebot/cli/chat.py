"""``voicebot chat``: talk to the bot by typing (or, with --json, drive it line by line from a program)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from voicebot.cli.common import config_option, settings_or_exit


def _turn_from_line(line: str) -> Any:
    """A plain line is what the caller said. A JSON object line may add keypad digits and signals:
    ``{"text": "...", "dtmf": "4321#", "signals": {"frustration": 0.8}}``. In the interactive mode
    ``/dtmf 4321`` types digits."""
    from dialogs.engine import Turn, TurnSignals

    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            signals = obj.get("signals")
            return Turn(text=str(obj.get("text") or ""), dtmf=obj.get("dtmf"),
                        signals=TurnSignals.from_dict(signals) if isinstance(signals, dict) else TurnSignals())
    if stripped.startswith("/dtmf"):
        return Turn(dtmf=stripped[5:].strip())
    return Turn(text=line.rstrip("\n"))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Read one user line per stdin line, print one JSON object per turn.")
@click.option("--caller-id", default=None, help="Simulate the caller ID (phone number) of the contact.")
@click.option("--channel", default="chat", show_default=True, help="Channel recorded for the contact.")
@config_option
def chat(as_json: bool, caller_id: str | None, channel: str, config_path: str | None) -> None:
    """Talk to the bot by typing. The conversation is stored as a contact like a call."""
    from sqlalchemy.exc import SQLAlchemyError

    from dialogs.db.engine import safe_url

    settings = settings_or_exit(config_path)
    try:
        _converse(settings, as_json, caller_id, channel)
    except SQLAlchemyError as exc:
        # Locked by another program or unreachable: the busy timeout has passed; say so, no traceback.
        reason = getattr(exc, "orig", None) or str(exc).splitlines()[0]
        click.echo(f"voicebot chat: the database {safe_url(settings.database.url)} is not available ({reason}); "
                   "the conversation ends here. Another program may hold it locked: try again in a moment.",
                   err=True)
        sys.exit(1)


def _converse(settings: Any, as_json: bool, caller_id: str | None, channel: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from dialogs.nlu.entities import MASK
    from voicebot.engine import build_engine_or_exit

    engine = build_engine_or_exit(settings)
    session = engine.new_call(channel=channel, caller_id=caller_id)
    greeting = session.start()
    record = _ChatRecord(settings, engine, session, channel, caller_id)
    record.bot(greeting, "greeting")
    if not as_json:
        click.echo(f"bot> {greeting.text}")
    first = True
    ended = False
    session_state = "active"
    database_failed = False
    try:
        while True:
            if not as_json:
                click.echo("you> ", nl=False)
            line = sys.stdin.readline()
            if not line:
                break
            turn = _turn_from_line(line)
            if ended:
                reply_obj: dict[str, Any] = {
                    "user": turn.text, "intents": [], "bot": "", "state": session_state, "handoff": None,
                }
            else:
                reply = session.handle(turn)
                record.turn(turn, reply)
                session_state = reply.state
                reply_obj = {
                    "user": reply.heard if reply.heard is not None else turn.text,  # a PIN said is masked
                    "intents": reply.intents,
                    "bot": reply.text,
                    "state": reply.state,
                    "handoff": reply.handoff.to_dict() if reply.handoff is not None else None,
                    "trace": reply.trace,
                    "expects": reply.expects,  # the kind of answer the bot's question asks for
                }
                if turn.dtmf:
                    reply_obj["dtmf"] = MASK if reply.keys_masked else turn.dtmf
                ended = reply.action != "continue"
            if as_json:
                if first:
                    reply_obj["greeting"] = greeting.text
                click.echo(json.dumps(reply_obj, ensure_ascii=False, default=str))
                sys.stdout.flush()
            else:
                if reply_obj["bot"]:
                    click.echo(f"bot> {reply_obj['bot']}")
                if ended and reply_obj["bot"]:
                    if reply_obj["handoff"]:
                        click.echo(f"[hand-off to queue '{reply_obj['handoff']['queue']}': {reply_obj['handoff']['summary']}]")
                    break
            first = False
    except KeyboardInterrupt:
        pass
    except SQLAlchemyError:
        database_failed = True  # storing the contact would wait for the same database again
        raise
    finally:
        if not database_failed:
            outcome = session.end("bot_hangup" if ended else "caller_hangup")
            record.close(outcome, "bot_hangup" if ended else "caller_hangup")
            if not as_json:
                click.echo(f"[call ended: {outcome}]")


class _ChatRecord:
    """A typed conversation recorded like a call (channel ``chat``): supervisors find it in the history, with its
    decision traces and scorecard. Written synchronously, so a database that fails stops the chat with the same
    clear message as the dialog's own writes."""

    def __init__(self, settings: Any, engine: Any, session: Any, channel: str, caller_id: str | None):
        from voicebot.qa.scorecard import scorer_from_settings
        from voicebot.redaction import Redactor
        from voicebot.storage import CallStore

        self.session = session
        self.store = CallStore(engine.database.engine, redactor=Redactor.from_settings(settings),
                               scorer=scorer_from_settings(settings.qa))
        self.call_id = session.call_id
        self.store.open_call(self.call_id, channel, caller_id)

    def bot(self, reply: Any, kind: str, keypad: bool = False) -> None:
        from datetime import UTC, datetime

        from dialogs.jsonable import jsonable

        trace = jsonable(reply.trace or {})
        if keypad:
            trace.pop("nlu", None)  # the parse of keyed digits would show a PIN (as the voice pipeline does)
        if reply.text:
            self.store.add_turn(self.call_id, "bot", reply.text, datetime.now(UTC), extra={"kind": kind, "trace": trace})

    def turn(self, turn: Any, reply: Any) -> None:
        from datetime import UTC, datetime

        from dialogs.nlu.entities import MASK

        now = datetime.now(UTC)
        if turn.dtmf and not turn.text:
            text = f"[keypad: {MASK}]" if reply.keys_masked else f"[keypad: {len(turn.dtmf)} key(s)]"
        else:
            text = reply.heard if reply.heard is not None else turn.text
        signals = turn.signals.to_dict() if turn.signals.frustration is not None else None
        self.store.add_turn(self.call_id, "caller", text, now, end=now, intents=reply.intents,
                            extra={"signals": signals} if signals else None)
        self.bot(reply, "reply", keypad=bool(turn.dtmf))

    def close(self, outcome: str, reason: str) -> None:
        customer_id = getattr(self.session.state, "customer_id", None)
        if isinstance(customer_id, int):
            self.store.set_customer(self.call_id, customer_id)
        self.store.close_call(self.call_id, outcome, reason)
        self.store.close(timeout=5)
