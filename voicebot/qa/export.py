"""Call records as CSV or JSON for spreadsheets and BI tools (``GET /api/calls/export``), streamed: each function
takes an iterator of call records (``CallStore.export``) and yields text chunks."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

CSV_KINDS = ("calls", "turns", "scorecards")
# Scorecard items with a pass/fail result, as columns of the `calls` CSV (rules are appended per call).
ITEM_COLUMNS = ("resolved", "containment", "ai_disclosure", "verified_before_account_actions",
                "confirmed_before_changes", "silence")
CALL_COLUMNS = ("id", "channel", "caller_id", "dialled", "start", "end", "duration_s", "outcome", "end_reason",
                "intents", "frustration_max", "agent_id", "resolved_by", *ITEM_COLUMNS, "silence_s",
                "talk_over_s", "frustration_trend", "sentiment", "handoff_reason", "qa_failed", "tags", "notes")
TURN_COLUMNS = ("call_id", "seq", "speaker", "start", "end", "text", "intents", "latency_ms", "kind")
ITEM_ROW_COLUMNS = ("call_id", "item", "result", "details", "evidence_turns", "evidence")


def _items(call: dict[str, Any]) -> dict[str, dict[str, Any]]:
    card = call.get("scorecard") or {}
    return {i["name"]: i for i in card.get("items") or [] if isinstance(i, dict) and "name" in i}


def _call_row(call: dict[str, Any]) -> list[Any]:
    items = _items(call)
    notes = call.get("notes") or []

    def result(name: str) -> Any:
        return items.get(name, {}).get("result", "")

    def value(name: str, key: str) -> Any:
        return items.get(name, {}).get(key, "")

    return [
        call.get("id"), call.get("channel"), call.get("caller_id"), call.get("dialled"), call.get("start"),
        call.get("end"), call.get("duration_s"), call.get("outcome"), call.get("end_reason"),
        " ".join(call.get("intents") or []), call.get("frustration_max"), call.get("agent_id"),
        value("resolved", "by") or "", *(result(n) for n in ITEM_COLUMNS), value("silence", "seconds"),
        value("talk_over", "seconds"), value("frustration", "trend"), result("sentiment"), result("handoff_reason"),
        " ".join(call.get("qa_failed") or []), " ".join(sorted({t for n in notes for t in n.get("tags") or []})),
        " | ".join(n.get("note", "") for n in notes if n.get("note")),
    ]


def _rows(kind: str, calls: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
    if kind == "calls":
        yield list(CALL_COLUMNS)
        for call in calls:
            yield _call_row(call)
    elif kind == "turns":
        yield list(TURN_COLUMNS)
        for call in calls:
            for seq, turn in enumerate(call.get("turns") or [], 1):
                extra = turn.get("extra") or {}
                intents = " ".join(i.get("name", "") for i in turn.get("intents") or [] if isinstance(i, dict))
                yield [call.get("id"), seq, turn.get("speaker"), turn.get("start"), turn.get("end"),
                       turn.get("text"), intents, turn.get("latency_ms"), extra.get("kind", "")]
    elif kind == "scorecards":
        yield list(ITEM_ROW_COLUMNS)
        for call in calls:
            for name, item in _items(call).items():
                details = {k: v for k, v in item.items() if k not in ("name", "result", "evidence")}
                evidence = item.get("evidence") or []
                yield [call.get("id"), name, item.get("result"), json.dumps(details) if details else "",
                       " ".join(str(e.get("turn")) for e in evidence),
                       " | ".join(f"{e.get('speaker')}: {e.get('text', '')}" for e in evidence)]
    else:
        raise ValueError(f"unknown export kind {kind!r}: one of {', '.join(CSV_KINDS)}")


def csv_rows(kind: str, calls: Iterable[dict[str, Any]], rows_per_chunk: int = 200) -> Iterator[str]:
    """The CSV of ``kind`` (``calls`` / ``turns`` / ``scorecards``) in chunks of lines. Cells that a spreadsheet
    would run as a formula (starting with = + - @) are quoted with a leading apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for n, row in enumerate(_rows(kind, calls), 1):
        writer.writerow([_cell(v) for v in row])
        if n % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@") and not _number(value):
        return "'" + value  # CSV injection: a caller's words must never become a spreadsheet formula
    return "" if value is None else value


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def json_chunks(calls: Iterable[dict[str, Any]]) -> Iterator[str]:
    """``{"calls": [...]}`` one call per chunk."""
    yield '{"calls": ['
    first = True
    for call in calls:
        yield ("" if first else ",\n") + json.dumps(call, ensure_ascii=False, default=str)
        first = False
    yield "]}\n"
