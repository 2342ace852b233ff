"""The database stores naive UTC datetimes; these helpers make any caller's datetime fit."""

from __future__ import annotations

from datetime import UTC, datetime


def naive_utc(when: datetime) -> datetime:
    """``when`` as a naive UTC datetime (aware values are converted, naive ones are taken as UTC)."""
    if when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def utc_now() -> datetime:
    """The current time as naive UTC (for the CLI and the app; libraries take ``now`` as a parameter)."""
    return datetime.now(UTC).replace(tzinfo=None)
