"""A call's memory goes back to the system when the call ends.

Two things kept it (measured in ``voicebot serve`` under ``benchmarks/soak.py``, ~7 MB more RSS per call):

- a call's objects form reference cycles (pipecat's processors link both ways, event handlers are bound methods),
  so they are freed only by a full garbage collection, which came rarely: a server with 10 calls under way held 26
  calls' pipelines, each with its own Silero VAD session (native memory Python does not count);
- glibc's malloc keeps what is freed for reuse and gives back only the free space at the top of a heap.

:func:`release_after_call` collects the garbage of the calls that ended, then runs glibc's ``malloc_trim(0)``
off the event loop, one at a time (elsewhere, e.g. musl or macOS, only the collection).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger(__name__)


def _glibc_malloc_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


@dataclass(frozen=True)
class Trim:
    """One trim: whether the C library gave memory back, and how long it held the heap."""

    released: bool
    seconds: float


class HeapTrimmer:
    """Gives the process's freed C heap back to the system; at most one trim runs at a time (calls that end
    while one runs share it). ``trim`` is the C library's trim function (None: nothing to do)."""

    def __init__(self, trim: Callable[[], int] | None) -> None:
        self._trim = trim
        self._busy = threading.Lock()
        # One thread of its own: a trim never waits behind other work, and calls ending together add no threads.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicebot-heap-trim")
        self.trims = 0  # trims done: the soak and the tests see that calls trigger them

    @property
    def available(self) -> bool:
        return self._trim is not None

    def trim(self) -> Trim | None:
        """Trim now (blocking); None if there is nothing to call or another trim is running."""
        if self._trim is None or not self._busy.acquire(blocking=False):
            return None
        try:
            started = time.perf_counter()
            released = bool(self._trim())
            self.trims += 1
            return Trim(released, time.perf_counter() - started)
        finally:
            self._busy.release()

    async def trim_soon(self) -> None:
        """Trim in a worker thread: the trim walks the whole heap and must not stall the other calls' media."""
        if self._trim is None or self._busy.locked():
            return  # the trim under way gives back this call's memory too
        done = await asyncio.get_running_loop().run_in_executor(self._thread, self.trim)
        if done is not None:
            log.debug("heap trimmed in %.1f ms (memory returned: %s)", done.seconds * 1000, done.released)


HEAP = HeapTrimmer(_glibc_malloc_trim())


async def release_after_call() -> None:
    """A call is over: free the ended calls' objects (and their native memory) now, and give it back to the system."""
    started = time.perf_counter()
    freed = gc.collect()
    log.debug("garbage collection after a call: %d objects in %.1f ms", freed, (time.perf_counter() - started) * 1000)
    await HEAP.trim_soon()
