"""The supervisor's trends: figures per hour, day or week, per intent and per agent, computed in SQL.

Every query is an aggregate over an indexed range of call starts (``ix_voicebot_calls_start``, and
``ix_voicebot_call_intents_start_intent`` for the per-intent figures; ``ix_voicebot_calls_start_figures`` and
``ix_voicebot_transfers_at_figures`` cover every column the per-bucket figures read, so those never touch the rows
and their JSON), so it reads only the calls of the range and returns a handful of rows whatever the number of calls: `benchmarks/analytics_queries.py` measures them over
100,000 calls. The bucket of a call is computed by the database (SQLite ``strftime``, PostgreSQL ``date_trunc``), in
UTC.

Definitions (the docs' glossary):
- *contained*: the bot resolved the call with no agent (outcome ``resolved``, no agent);
- *handle time*: from the call's start to its end; *speed of answer*: a transfer's wait until an agent took it;
- calls count in the bucket they started in, transfers in the bucket they ended in (``voicebot_transfers.at``);
- *abandon rate*: calls that ended ``abandoned`` (the caller hung up before being helped) over all calls;
- *service level*: transfers an agent answered within their queue's ``service_level_s`` over all finished transfers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, String, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from voicebot.storage.models import CallIntentRow, CallRow
from voicebot.storage.transfers import TransferRow

BUCKETS = ("hour", "day", "week")
DEFAULT_SERVICE_LEVEL_S = 20.0


def _naive_utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


class Analytics:
    """Trend queries on the call records of one database."""

    def __init__(self, engine: Engine, service_level_s: Mapping[str, float] | None = None,
                 default_service_level_s: float = DEFAULT_SERVICE_LEVEL_S):
        self.engine = engine
        self.service_level_s = dict(service_level_s or {})  # per queue name
        self.default_service_level_s = default_service_level_s
        self._sqlite = engine.dialect.name == "sqlite"

    # ------------------------------------------------------------------ SQL pieces

    def _bucket(self, column: Any, bucket: str) -> ColumnElement[str]:
        if bucket not in BUCKETS:
            raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
        if self._sqlite:
            if bucket == "hour":
                return func.strftime("%Y-%m-%dT%H:00", column)
            if bucket == "day":
                return func.strftime("%Y-%m-%d", column)
            return func.date(column, "weekday 0", "-6 days")  # the Monday of the week
        utc = func.timezone("UTC", column)
        fmt = "YYYY-MM-DD\"T\"HH24:00" if bucket == "hour" else "YYYY-MM-DD"
        return func.to_char(func.date_trunc(bucket, utc), fmt)

    def _seconds(self, start: Any, end: Any) -> ColumnElement[Any]:
        if self._sqlite:
            return (func.julianday(end) - func.julianday(start)) * 86400.0
        return func.extract("epoch", end - start)

    def _bounds(self, since: datetime, until: datetime) -> tuple[datetime, datetime]:
        # SQLite keeps the UTC times without their zone: compare like with like.
        return (_naive_utc(since), _naive_utc(until)) if self._sqlite else (since, until)

    def _range(self, since: datetime, until: datetime, column: Any = CallRow.start) -> list[ColumnElement[bool]]:
        start, end = self._bounds(since, until)
        return [column >= start, column < end]

    @staticmethod
    def _contained() -> ColumnElement[int]:
        return case((and_(CallRow.outcome == "resolved", CallRow.agent_id.is_(None)), 1), else_=0)

    def _answered_in_time(self) -> ColumnElement[int]:
        limits = [(TransferRow.queue == name, limit) for name, limit in self.service_level_s.items()]
        threshold: Any = case(*limits, else_=literal(self.default_service_level_s)) if limits \
            else literal(self.default_service_level_s)
        return case((and_(TransferRow.agent_id.is_not(None), TransferRow.wait_s <= threshold), 1), else_=0)

    # ------------------------------------------------------------------ queries

    def trends(self, since: datetime, until: datetime, bucket: str = "hour") -> dict[str, Any]:
        """Per bucket: calls, contained, containment rate, average handle time, abandoned and abandon rate, average
        frustration peak; transfers, answered, average speed of answer, service level. Plus per intent: calls,
        contained, containment rate."""
        when = self._bucket(CallRow.start, bucket)
        duration = self._seconds(CallRow.start, CallRow.end)
        calls = (
            select(
                when.label("bucket"),
                func.count().label("calls"),
                func.sum(self._contained()).label("contained"),
                func.avg(case((CallRow.end.is_not(None), duration))).label("handle_s"),
                func.sum(case((CallRow.outcome == "abandoned", 1), else_=0)).label("abandoned"),
                func.avg(CallRow.frustration_max).label("frustration"),
            )
            .where(*self._range(since, until))
            .group_by(when)
        )
        handed = self._bucket(TransferRow.at, bucket)
        transfers = (
            select(
                handed.label("bucket"),
                func.count(TransferRow.id).label("transfers"),
                func.sum(case((TransferRow.agent_id.is_not(None), 1), else_=0)).label("answered"),
                func.avg(case((TransferRow.agent_id.is_not(None), TransferRow.wait_s))).label("asa_s"),
                func.sum(self._answered_in_time()).label("in_time"),
            )
            .where(*self._range(since, until, TransferRow.at))
            .group_by(handed)
        )
        contained = case((and_(CallIntentRow.outcome == "resolved", CallIntentRow.agent_id.is_(None)), 1), else_=0)
        intents = (
            select(
                CallIntentRow.intent,
                func.count().label("calls"),
                func.sum(contained).label("contained"),
            )
            .where(*self._range(since, until, CallIntentRow.start))
            .group_by(CallIntentRow.intent)
            .order_by(func.count().desc())
        )
        with Session(self.engine) as s:
            series: dict[str, dict[str, Any]] = {}
            for row in s.execute(calls):
                n = int(row.calls)
                series[row.bucket] = {
                    "bucket": row.bucket, "calls": n, "contained": int(row.contained or 0),
                    "containment_rate": _ratio(row.contained, n),
                    "avg_handle_s": _round(row.handle_s), "abandoned": int(row.abandoned or 0),
                    "abandon_rate": _ratio(row.abandoned, n), "avg_frustration": _round(row.frustration, 3),
                    "transfers": 0, "answered": 0, "avg_speed_of_answer_s": None, "service_level": None,
                }
            for row in s.execute(transfers):
                entry = series.setdefault(row.bucket, _empty(row.bucket))
                entry.update(transfers=int(row.transfers), answered=int(row.answered or 0),
                             avg_speed_of_answer_s=_round(row.asa_s),
                             service_level=_ratio(row.in_time, row.transfers))
            per_intent = [{"intent": row.intent, "calls": int(row.calls), "contained": int(row.contained or 0),
                           "containment_rate": _ratio(row.contained, row.calls)} for row in s.execute(intents)]
        return {"since": since.isoformat(), "until": until.isoformat(), "bucket": bucket,
                "series": [series[k] for k in sorted(series)], "intents": per_intent}

    def agents(self, since: datetime, until: datetime, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Per agent: calls taken (transfers that ended in the range), average handle (talk) time, average speed
        of answer, and their calls (started in the range) whose scorecard failed a check. ``agent_id``: only that
        agent (an agent sees only their own figures)."""
        taken = (
            select(
                TransferRow.agent_id,
                func.count().label("calls"),
                func.avg(TransferRow.talk_s).label("talk_s"),
                func.avg(TransferRow.wait_s).label("wait_s"),
            )
            .where(*self._range(since, until, TransferRow.at), TransferRow.agent_id.is_not(None))
            .group_by(TransferRow.agent_id)
        )
        failed = (
            select(CallRow.agent_id, func.count().label("failed"))
            .where(*self._range(since, until), CallRow.agent_id.is_not(None),
                   cast(CallRow.qa_results, String).like('%=fail"%'))
            .group_by(CallRow.agent_id)
        )
        if agent_id is not None:
            taken = taken.where(TransferRow.agent_id == agent_id)
            failed = failed.where(CallRow.agent_id == agent_id)
        with Session(self.engine) as s:
            failures = {row.agent_id: int(row.failed) for row in s.execute(failed)}
            return [{"agent_id": row.agent_id, "calls": int(row.calls), "avg_handle_s": _round(row.talk_s),
                     "avg_speed_of_answer_s": _round(row.wait_s), "scorecards_failed": failures.get(row.agent_id, 0)}
                    for row in sorted(s.execute(taken), key=lambda r: r.agent_id)]


def _empty(bucket: str) -> dict[str, Any]:
    """A bucket with transfers but no call started in it (a call from the bucket before, handed over later)."""
    return {"bucket": bucket, "calls": 0, "contained": 0, "containment_rate": None, "avg_handle_s": None,
            "abandoned": 0, "abandon_rate": None, "avg_frustration": None}


def _ratio(part: Any, whole: Any) -> float | None:
    return round(float(part or 0) / float(whole), 4) if whole else None


def _round(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)
