"""One thread that sends every RTP session's next packet every 20 ms.

Sending from the asyncio loop would put every stall of the loop (a model call, a slow frame processor) into
the outgoing audio as a gap the caller hears. A dedicated thread keeps the 20 ms cadence as long as it gets
the GIL, which Python hands over every few milliseconds.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)

PTIME_S = 0.02


class Paced(Protocol):
    def pace(self, now: float) -> None: ...


class Pacer:
    """Calls ``pace(now)`` on every registered session once per 20 ms tick, from one daemon thread."""

    def __init__(self) -> None:
        self._sessions: list[Paced] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, session: Paced) -> None:
        with self._lock:
            self._sessions.append(session)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="rtp-pacer", daemon=True)
                self._thread.start()

    def remove(self, session: Paced) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)

    def _run(self) -> None:
        due = time.monotonic()
        while True:
            with self._lock:
                sessions = list(self._sessions)
            now = time.monotonic()
            for session in sessions:
                try:
                    session.pace(now)
                except Exception:
                    log.exception("RTP pacing failed for %s", session)
                    self.remove(session)
            due += PTIME_S
            delay = due - time.monotonic()
            if delay < -0.2:
                due = time.monotonic()  # stalled for long: restart the schedule rather than burst
            elif delay > 0:
                time.sleep(delay)


PACER = Pacer()
