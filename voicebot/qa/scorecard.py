"""The automatic scorecard of a conversation, computed from its call record when the record closes.

Every item says what was checked, its result (``pass`` / ``fail`` / ``n/a``, or a value) and the evidence: the
turns (number from 1, speaker, time, words) that decided it, so a reviewer can jump to them. Items:

- ``resolved``: resolved or not, and by whom (``bot`` / ``agent``);
- ``containment``: no human needed (no hand-off, no agent);
- ``ai_disclosure``: the bot's first words say the caller talks to an automated assistant;
- ``verified_before_account_actions``: every account action ran after the caller's identity was verified;
- ``confirmed_before_changes``: every change (address, cancellation, return ...) was confirmed by the caller;
- ``silence``: seconds of dead air (gaps between turns longer than ``qa.silence_gap_s``) and the longest gap;
- ``talk_over``: seconds the caller and the bot spoke at once, and how often the caller cut the bot off;
- ``frustration``: the peak score of the caller's voice and its trend;
- ``sentiment``: the caller's words at start and at end (negative / neutral / positive);
- ``handoff_reason``: why the bot handed over, if it did;
- one item per rule of ``qa.rules`` (e.g. "the cancellation period is said before cancelling").

It reads only the record's JSON (turns with ``extra.trace`` steps, signals, kinds), so a record written by an
older version scores too, with ``n/a`` where the trace lacks what an item needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from voicebot.qa.sentiment import label, sentiment

if TYPE_CHECKING:
    from voicebot.config import QAConfig

VERSION = 1
PASS, FAIL, NA = "pass", "fail", "n/a"
_ACTION_STEP = re.compile(r"^action (\w+) -> (\w+)")


@dataclass(frozen=True)
class Rule:
    """A house rule checked on every call where it applies: when action ``when_action`` ran (or on every call
    without it), a bot turn (before the action, if ``before``) must say ``bot_must_say`` and none may say
    ``bot_must_not_say`` (regular expressions, case-insensitive)."""

    name: str
    description: str = ""
    when_action: str | None = None
    bot_must_say: str | None = None
    bot_must_not_say: str | None = None
    before: bool = True


@dataclass(frozen=True)
class ScorecardSettings:
    disclosure_pattern: str = r"\b(automated|virtual|digital)\s+(assistant|agent)\b|\bbot\b|\bAI\b"
    silence_gap_s: float = 3.0
    change_actions: frozenset[str] = frozenset(
        {"change_address", "cancel_subscription", "start_return", "refund_duplicate_charge", "reset_password"}
    )
    public_actions: frozenset[str] = frozenset()
    rules: tuple[Rule, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class _Turn:
    n: int
    speaker: str
    text: str
    start: datetime | None
    end: datetime | None
    extra: Mapping[str, Any]

    def evidence(self, note: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"turn": self.n, "speaker": self.speaker,
                               "time": self.start.isoformat() if self.start else None, "text": self.text[:200]}
        if note:
            out["note"] = note
        return out

    @property
    def steps(self) -> list[str]:
        trace = self.extra.get("trace")
        steps = trace.get("steps") if isinstance(trace, Mapping) else None
        return [str(s) for s in steps] if isinstance(steps, list) else []

    @property
    def trace(self) -> Mapping[str, Any]:
        trace = self.extra.get("trace")
        return trace if isinstance(trace, Mapping) else {}


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _turns(record: Mapping[str, Any]) -> list[_Turn]:
    out = []
    for n, t in enumerate(record.get("turns") or [], 1):
        extra = t.get("extra") if isinstance(t.get("extra"), Mapping) else {}
        out.append(_Turn(n, str(t.get("speaker") or ""), str(t.get("text") or ""), _time(t.get("start")),
                         _time(t.get("end")), extra))
    return out


def _item(name: str, result: Any, evidence: Iterable[dict[str, Any]] = (), **values: Any) -> dict[str, Any]:
    return {"name": name, "result": result, **values, "evidence": list(evidence)}


class Scorer:
    """Scores closed call records with one set of settings (``qa:`` in voicebot.yaml)."""

    def __init__(self, settings: ScorecardSettings | None = None):
        self.settings = settings or ScorecardSettings()
        self._disclosure = re.compile(self.settings.disclosure_pattern, re.I)

    def score(self, record: Mapping[str, Any], *, handed_over: bool | None = None) -> dict[str, Any]:
        """The scorecard of one closed call (``record`` as ``CallStore.get`` returns it). ``handed_over``: the
        call went to the agent queue (from the hand-off records), if known besides the turns' traces."""
        turns = _turns(record)
        actions = self._actions(turns)
        handoff = self._handoff(turns)
        if handed_over is None:
            handed_over = handoff is not None
        items = [
            self._resolved(record, turns, handed_over),
            self._containment(record, turns, handed_over, handoff),
            self._disclosure_item(turns),
            self._verified(actions),
            self._confirmed(actions),
            self._silence(turns),
            self._talk_over(turns),
            self._frustration(turns),
            self._sentiment(turns),
            _item("handoff_reason", handoff[0] if handoff else NA, [handoff[1].evidence()] if handoff else []),
            *(self._rule(rule, turns, actions) for rule in self.settings.rules),
        ]
        return {
            "version": VERSION,
            "computed_at": datetime.now(UTC).isoformat(),
            "items": items,
            "failed": [i["name"] for i in items if i["result"] == FAIL],
        }

    # ------------------------------------------------------------------ items

    @staticmethod
    def _actions(turns: Sequence[_Turn]) -> list[tuple[str, str, _Turn, bool, bool]]:
        """(action, its result, the bot turn, verified then, confirmed in that turn) for every action run."""
        out = []
        for turn in turns:
            if turn.speaker != "bot":
                continue
            steps = turn.steps
            for i, step in enumerate(steps):
                match = _ACTION_STEP.match(step)
                if match:
                    confirmed = "confirmed" in steps[:i]
                    out.append((match.group(1), match.group(2), turn, bool(turn.trace.get("verified")), confirmed))
        return out

    @staticmethod
    def _handoff(turns: Sequence[_Turn]) -> tuple[str, _Turn] | None:
        for turn in turns:
            reason = turn.trace.get("handoff_reason")
            if turn.speaker == "bot" and reason:
                return str(reason), turn
        return None

    @staticmethod
    def _resolved(record: Mapping[str, Any], turns: Sequence[_Turn], handed_over: bool) -> dict[str, Any]:
        outcome = record.get("outcome")
        agent_turns = [t for t in turns if t.speaker == "agent"]
        if record.get("agent_id") or agent_turns:
            by = "agent"
            resolved = outcome not in ("abandoned", "unresolved", "error", "node_lost", "interrupted", None)
        else:
            by = "bot"
            resolved = outcome == "resolved"
        evidence = [agent_turns[-1].evidence()] if agent_turns else ([turns[-1].evidence()] if turns else [])
        return _item("resolved", PASS if resolved else FAIL, evidence, by=by if resolved else None,
                     outcome=outcome)

    @staticmethod
    def _containment(record: Mapping[str, Any], turns: Sequence[_Turn], handed_over: bool,
                     handoff: tuple[str, _Turn] | None) -> dict[str, Any]:
        human = handed_over or bool(record.get("agent_id")) or any(t.speaker == "agent" for t in turns)
        return _item("containment", FAIL if human else PASS, [handoff[1].evidence()] if handoff else [])

    def _disclosure_item(self, turns: Sequence[_Turn]) -> dict[str, Any]:
        first = next((t for t in turns if t.speaker == "bot"), None)
        if first is None:
            return _item("ai_disclosure", NA)
        said = bool(self._disclosure.search(first.text))
        return _item("ai_disclosure", PASS if said else FAIL, [first.evidence()])

    def _verified(self, actions: Sequence[tuple[str, str, _Turn, bool, bool]]) -> dict[str, Any]:
        account = [a for a in actions if a[0] not in self.settings.public_actions]
        if not account:
            return _item("verified_before_account_actions", NA)
        bad = [a for a in account if not a[3]]
        evidence = [a[2].evidence(f"{a[0]} ran {'unverified' if not a[3] else 'verified'}") for a in (bad or account)]
        return _item("verified_before_account_actions", FAIL if bad else PASS, evidence)

    def _confirmed(self, actions: Sequence[tuple[str, str, _Turn, bool, bool]]) -> dict[str, Any]:
        changes = [a for a in actions if a[0] in self.settings.change_actions]
        if not changes:
            return _item("confirmed_before_changes", NA)
        bad = [a for a in changes if not a[4]]
        evidence = [a[2].evidence(f"{a[0]} {'not ' if not a[4] else ''}confirmed") for a in (bad or changes)]
        return _item("confirmed_before_changes", FAIL if bad else PASS, evidence)

    def _silence(self, turns: Sequence[_Turn]) -> dict[str, Any]:
        timed = sorted((t for t in turns if t.start is not None), key=lambda t: t.start or datetime.min)
        total = 0.0
        longest = 0.0
        worst: _Turn | None = None
        busy_until: datetime | None = None
        for turn in timed:
            assert turn.start is not None
            if busy_until is not None:
                gap = (turn.start - busy_until).total_seconds()
                if gap > self.settings.silence_gap_s:
                    total += gap
                if gap > longest:
                    longest, worst = gap, turn
            end = turn.end or turn.start
            busy_until = end if busy_until is None or end > busy_until else busy_until
        result = PASS if longest <= self.settings.silence_gap_s else FAIL
        return _item("silence", result if timed else NA, [worst.evidence("after the longest gap")] if worst else [],
                     seconds=round(total, 1), longest_gap_s=round(longest, 1))

    @staticmethod
    def _talk_over(turns: Sequence[_Turn]) -> dict[str, Any]:
        bots = [t for t in turns if t.speaker == "bot" and t.start and t.end]
        callers = [t for t in turns if t.speaker == "caller" and t.start and t.end]
        overlap = 0.0
        evidence = []
        for c in callers:
            for b in bots:
                assert c.start and c.end and b.start and b.end
                both = (min(c.end, b.end) - max(c.start, b.start)).total_seconds()
                if both > 0:
                    overlap += both
        barge = [t for t in bots if t.extra.get("interrupted")]
        evidence = [t.evidence("cut off by the caller") for t in barge]
        return _item("talk_over", round(overlap, 1), evidence, seconds=round(overlap, 1), interruptions=len(barge))

    @staticmethod
    def _frustration(turns: Sequence[_Turn]) -> dict[str, Any]:
        scored = []
        for t in turns:
            signals = t.extra.get("signals")
            value = signals.get("frustration") if isinstance(signals, Mapping) else None
            if t.speaker == "caller" and isinstance(value, (int, float)):
                scored.append((float(value), t))
        if not scored:
            return _item("frustration", NA)
        peak, at = max(scored, key=lambda s: s[0])
        change = scored[-1][0] - scored[0][0]
        trend = "rising" if change >= 0.15 else "falling" if change <= -0.15 else "steady"
        return _item("frustration", round(peak, 2), [at.evidence("peak")], peak=round(peak, 2), trend=trend)

    @staticmethod
    def _sentiment(turns: Sequence[_Turn]) -> dict[str, Any]:
        said = [t for t in turns if t.speaker == "caller" and t.text.strip() and not t.text.startswith("[")]
        if not said:
            return _item("sentiment", NA)
        first, last = said[0], said[-1]
        start, end = sentiment(first.text), sentiment(last.text)
        return _item("sentiment", f"{label(start)} -> {label(end)}", [first.evidence("start"), last.evidence("end")],
                     start=round(start, 2), end=round(end, 2))

    @staticmethod
    def _rule(rule: Rule, turns: Sequence[_Turn], actions: Sequence[tuple[str, str, _Turn, bool, bool]]) -> dict[str, Any]:
        name = f"rule:{rule.name}"
        bots = [t for t in turns if t.speaker == "bot"]
        limit = len(turns) + 1
        if rule.when_action:
            ran = [a for a in actions if a[0] == rule.when_action]
            if not ran:
                return _item(name, NA, description=rule.description)
            limit = ran[0][2].n if rule.before else limit
        evidence = []
        result = PASS
        if rule.bot_must_say:
            pattern = re.compile(rule.bot_must_say, re.I)
            # The action's own turn counts: its reply can say the period and report the change in one sentence.
            said = [t for t in bots if t.n <= limit and pattern.search(t.text)]
            if said:
                evidence.append(said[0].evidence("said"))
            else:
                result = FAIL
                if rule.when_action:
                    evidence.append(ran[0][2].evidence(f"{rule.when_action} without it"))
        if rule.bot_must_not_say:
            pattern = re.compile(rule.bot_must_not_say, re.I)
            bad = [t for t in bots if pattern.search(t.text)]
            if bad:
                result = FAIL
                evidence.extend(t.evidence("must not be said") for t in bad)
        return _item(name, result, evidence, description=rule.description)


def scorer_from_settings(qa: QAConfig) -> Scorer | None:
    """The scorer ``qa:`` in voicebot.yaml asks for; None when scorecards are off."""
    if not qa.scorecards:
        return None
    return Scorer(ScorecardSettings(
        disclosure_pattern=qa.disclosure_pattern,
        silence_gap_s=qa.silence_gap_s,
        change_actions=frozenset(qa.change_actions),
        public_actions=frozenset(qa.public_actions),
        rules=tuple(Rule(name=r.name, description=r.description, when_action=r.when_action,
                         bot_must_say=r.bot_must_say, bot_must_not_say=r.bot_must_not_say, before=r.before)
                    for r in qa.rules),
    ))


def without_quotes(card: Mapping[str, Any]) -> dict[str, Any]:
    """The scorecard with the words of its evidence removed (turn numbers and times stay): what erasure and the
    retention purge leave of it."""
    out = dict(card)
    out["items"] = [
        {**item, "evidence": [{k: v for k, v in e.items() if k != "text"} for e in item.get("evidence") or []]}
        for item in card.get("items") or []
    ]
    return out
