"""One way to turn dialog data (dates, Decimals, nested slots) into plain JSON values."""

from __future__ import annotations

from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with dates as ISO strings, containers converted recursively and anything unknown as ``str``."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return str(value)
