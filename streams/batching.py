"""Work held back while records come, and done in one go: answers, and match events.

Answering the merger after every shard-log record, and announcing after every answer, costs a Kafka
record (about 170 µs of faust's own time to consume, FAUST.md) per seeker touched: ten and more per
input event. A :class:`Batch` runs its flush at most every ``interval`` while records come, and a
timer runs it once more when they stop, so a record waits at most about ``interval`` for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Batch"]


class Batch:
    def __init__(self, flush: Callable[[], Awaitable[None]], *, interval: float) -> None:
        self._flush = flush
        self.interval = interval
        self._due = time.monotonic() + interval
        self._lock = asyncio.Lock()
        """Never two flushes at once: their sends could interleave, and a seeker's events (or a shard's
        answers) reach the topic out of order."""

    async def after_record(self) -> None:
        """Called after each record: flushes if the last flush is ``interval`` old."""
        if time.monotonic() >= self._due:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            self._due = time.monotonic() + self.interval
            await self._flush()
