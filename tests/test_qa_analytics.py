"""Supervisor analytics: trends per hour/day/week, containment per intent, per-agent figures, computed in SQL over
call records written through the call store and hand-offs as the transfer service records them; the API and its
roles on the real app (uvicorn on loopback, real logins)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from app_helpers import model_less_app
from auth_helpers import add_user, login
from net_helpers import serve_app
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from voicebot.config import Settings
from voicebot.events import EventBus
from voicebot.qa.analytics import Analytics
from voicebot.storage import CallStore
from voicebot.storage.schema import drop_all, upgrade
from voicebot.storage.transfers import TransferRow

DAY1 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # a Monday
DAY2 = DAY1 + timedelta(days=1)


def call(store: CallStore, call_id: str, start: datetime, minutes: float, outcome: str, intents: list[str],
         frustration: float | None = None, agent: str | None = None) -> None:
    """A call recorded as the pipeline records it, then moved to ``start`` (the store stamps the real time)."""
    store.open_call(call_id, "sip", "+15550001000")
    store.add_turn(call_id, "caller", "words", start, end=start, intents=[{"name": n} for n in intents],
                   extra={"signals": {"frustration": frustration}} if frustration is not None else None)
    if agent:
        store.set_agent(call_id, agent)
    store.close_call(call_id, outcome, "caller_hangup")
    assert store.flush(timeout=10)
    from sqlalchemy import update

    from voicebot.storage.models import CallIntentRow, CallRow
    with Session(store.engine) as s, s.begin():
        s.execute(update(CallRow).where(CallRow.id == call_id).values(start=start, end=start + timedelta(minutes=minutes)))
        s.execute(update(CallIntentRow).where(CallIntentRow.call_id == call_id).values(start=start))


def transfer(engine: Engine, call_id: str, queue: str, agent: str | None, wait_s: float, talk_s: float | None,
             outcome: str, at: datetime) -> None:
    """A hand-off as the transfer service records it when it ends (``at``)."""
    with Session(engine) as s, s.begin():
        s.add(TransferRow(call_id=call_id, queue=queue, agent_id=agent, outcome=outcome, wait_s=wait_s, talk_s=talk_s,
                          at=at))



@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CallStore]]:
    """The same calls in SQLite and in PostgreSQL (the ``postgres_url`` fixture: a throwaway database)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        drop_all(url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('analytics') / 'voicebot.db'}"
    engine = create_engine(url)
    upgrade(engine)
    store = CallStore(engine, EventBus())
    call(store, "a", DAY1, 2, "resolved", ["order_status"], 0.1)
    call(store, "b", DAY1 + timedelta(hours=1), 4, "resolved", ["order_status", "change_address"], 0.3)
    call(store, "c", DAY1 + timedelta(hours=1, minutes=5), 6, "handoff", ["billing_question"], 0.8, agent="alice")
    call(store, "d", DAY2, 1, "abandoned", ["order_status"])
    call(store, "e", DAY2 + timedelta(hours=2), 10, "handoff", ["cancel_subscription"], 0.5, agent="bob")
    call(store, "f", DAY2 + timedelta(hours=3), 3, "abandoned", ["billing_question"])
    transfer(engine, "c", "billing", "alice", 12.0, 240.0, "answered", DAY1 + timedelta(hours=1, minutes=11))
    transfer(engine, "e", "general", "bob", 45.0, 420.0, "answered", DAY2 + timedelta(hours=2, minutes=10))
    transfer(engine, "f", "billing", None, 80.0, None, "abandoned", DAY2 + timedelta(hours=3, minutes=3))
    yield url, store
    store.close()
    engine.dispose()
    if request.param == "postgresql":
        drop_all(url)


def test_daily_trends_count_containment_handle_time_abandons_and_the_service_level(db):
    url, store = db
    figures = Analytics(store.engine, {"billing": 20.0, "general": 60.0})
    trends = figures.trends(DAY1 - timedelta(days=1), DAY2 + timedelta(days=1), "day")
    day1, day2 = trends["series"]
    assert (day1["bucket"], day1["calls"], day1["contained"], day1["abandoned"]) == ("2026-11-16", 3, 2, 0)
    assert day1["containment_rate"] == round(2 / 3, 4) and day1["avg_handle_s"] == 240.0
    assert day1["avg_frustration"] == round((0.1 + 0.3 + 0.8) / 3, 3)
    assert (day1["transfers"], day1["answered"], day1["avg_speed_of_answer_s"], day1["service_level"]) == (1, 1, 12.0, 1.0)
    assert (day2["bucket"], day2["calls"], day2["contained"], day2["abandoned"]) == ("2026-11-17", 3, 0, 2)
    assert day2["abandon_rate"] == round(2 / 3, 4)
    # bob answered after 45 s (general: within 60 s); the billing caller hung up after 80 s unanswered
    assert (day2["transfers"], day2["answered"], day2["avg_speed_of_answer_s"], day2["service_level"]) == (2, 1, 45.0, 0.5)
    per_intent = {i["intent"]: i for i in trends["intents"]}
    assert per_intent["order_status"] == {"intent": "order_status", "calls": 3, "contained": 2,
                                          "containment_rate": round(2 / 3, 4)}
    assert per_intent["billing_question"]["containment_rate"] == 0.0


def test_hourly_and_weekly_buckets_and_an_empty_range(db):
    _, store = db
    figures = Analytics(store.engine)
    hours = figures.trends(DAY1, DAY1 + timedelta(hours=3), "hour")
    assert [(b["bucket"], b["calls"]) for b in hours["series"]] == [("2026-11-16T09:00", 1), ("2026-11-16T10:00", 2)]
    weeks = figures.trends(DAY1 - timedelta(days=7), DAY2 + timedelta(days=7), "week")
    assert [(b["bucket"], b["calls"]) for b in weeks["series"]] == [("2026-11-16", 6)]
    empty = figures.trends(DAY1 - timedelta(days=30), DAY1 - timedelta(days=29), "day")
    assert empty["series"] == [] and empty["intents"] == []
    with pytest.raises(ValueError, match="bucket must be one of hour, day, week"):
        figures.trends(DAY1, DAY2, "month")


def test_per_agent_figures(db):
    _, store = db
    agents = Analytics(store.engine).agents(DAY1, DAY2 + timedelta(days=1))
    assert agents == [
        {"agent_id": "alice", "calls": 1, "avg_handle_s": 240.0, "avg_speed_of_answer_s": 12.0, "scorecards_failed": 0},
        {"agent_id": "bob", "calls": 1, "avg_handle_s": 420.0, "avg_speed_of_answer_s": 45.0, "scorecards_failed": 0},
    ]


def test_the_api_serves_trends_to_staff_and_agents_only_their_own_row(db, tmp_path: Path):
    url, store = db
    settings = Settings(database={"url": url}, privacy={"purge_daily": False},  # type: ignore[arg-type]
                        queues=[{"name": "billing", "service_level_s": 20}, {"name": "general", "service_level_s": 60}])  # type: ignore[list-item]
    parts = model_less_app(store, settings)
    add_user(store.engine, "sue", "supervisor")
    add_user(store.engine, "alice", "agent", agent_id="alice")
    span = {"from": (DAY1 - timedelta(days=1)).isoformat(), "to": (DAY2 + timedelta(days=1)).isoformat()}
    with serve_app(parts.create()) as base:
        sue, alice = login(base, "sue"), login(base, "alice")
        got = httpx.get(f"{base}/api/analytics", headers=sue, params={**span, "bucket": "day"})
        assert got.status_code == 200, got.text
        body = got.json()
        assert [b["calls"] for b in body["series"]] == [3, 3] and body["series"][1]["service_level"] == 0.5
        assert {a["agent_id"] for a in body["agents"]} == {"alice", "bob"}
        assert httpx.get(f"{base}/api/analytics", headers=alice, params=span).status_code == 403
        mine = httpx.get(f"{base}/api/analytics/agents", headers=alice, params=span).json()["agents"]
        assert [a["agent_id"] for a in mine] == ["alice"]
        bad = httpx.get(f"{base}/api/analytics", headers=sue, params={**span, "bucket": "month"})
        assert bad.status_code == 400 and "hour, day, week" in bad.json()["detail"]
        wide = httpx.get(f"{base}/api/analytics", headers=sue, params={"from": "2020-01-01T00:00:00Z",
                                                                         "to": "2026-01-01T00:00:00Z"})
        assert wide.status_code == 400 and "at most" in wide.json()["detail"]
