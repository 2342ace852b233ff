"""Threads of their own for the short blocking work of a reply: the dialog's turn and the bot's speech.

The inference pool (``SharedModels.run``) takes jobs in the order they come, two at a time. With many calls it is
mostly busy with other callers' recognitions (about half a second each), and a reply's dialog turn (tens of
milliseconds) or next sentence of speech waited behind them: measured with 16 SIP calls, dialog turns waited up to
1.8 s and sentences up to 3 s. In lanes of their own these jobs share the CPU with recognition as the operating
system shares it, instead of waiting for whole recognitions to finish. Speech has one thread: Piper synthesises
one sentence at a time anyway (``SharedModels.synthesize``), so a second thread would only wait for the first.

The lanes are module-level, one pair per process, rather than owned by ``SharedModels``: their thread counts are
limits for the whole process (one that builds two ``SharedModels``, as ``benchmarks/stt_second_opinion.py`` does,
still has one dialog lane), and a dialog turn uses none of its models. Each starts its threads on first use, so
importing the module costs nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Lane:
    """A small thread pool for one kind of job, started on first use."""

    def __init__(self, name: str, threads: int):
        self.name = name
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking ``func(*args)`` in this lane."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=self.name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)


DIALOG = Lane("voicebot-dialog", 2)
SPEECH = Lane("voicebot-speech", 1)
