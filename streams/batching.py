"""Work held back while records come, and done in one go: answers, and match events.

Answering the merger after every shard-log record, and announcing after every answer, costs a Kafka
record (about 170 µs of faust's own time to consume, FAUST.md) per seeker touched: ten and more per
input event. A :class:`Batch` runs its flush at most every ``interval`` while records come. When they
stop, a timer (:meth:`Batch.flush_if_waiting`) runs it once the stage has waited ``idle`` for its next
record: in a backlog the next record is always there and batches stay ``interval`` long, while at a
trickle a record's answers and match events leave within a few milliseconds, not up to ``interval``.
A batch that is *full* (a shard's events changed ``batch_full_seekers`` seekers: an offer entering a
hundred top Ks) leaves right after its record, whatever its age.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

__all__ = ["Batch"]


class Batch:
    def __init__(
        self,
        flush: Callable[[], Awaitable[None]],
        *,
        interval: float,
        idle: float,
        clock: Callable[[], float] = time.monotonic,
        activity: asyncio.Event | None = None,
        full: Callable[[], bool] | None = None,
    ) -> None:
        """``full``: whether what the batch holds should leave after the record at once, however young
        the batch."""
        self._flush = flush
        self._full = full
        self.interval = interval
        self.idle = idle
        self._clock = clock
        self._due = clock() + interval
        self._held = 0
        """Records taken since the last flush began."""
        self._in_records = 0
        """Records being taken: two stages may feed one batch (a direct worker's intake and shard)."""
        self._waiting_since = clock()
        self._lock = asyncio.Lock()
        """Never two flushes at once: their sends could interleave, and a seeker's events (or a shard's
        answers) reach the topic out of order."""
        self.activity = activity if activity is not None else asyncio.Event()
        """Set when a record begins: wakes a timer that waits (:meth:`wait_for_records`) rather than
        ticking every ``idle`` while nothing comes. Batches that one timer serves share it."""

    @property
    def busy(self) -> bool:
        """A record is being taken, or records were taken since the last flush."""
        return self._in_records > 0 or self._held > 0

    def before_record(self) -> None:
        self._in_records += 1
        self.activity.set()

    async def after_record(self) -> None:
        """Called after each record: flushes if the last flush is ``interval`` old, or if the batch is
        full."""
        self._in_records -= 1
        self._held += 1
        self._waiting_since = self._clock()
        if self._waiting_since >= self._due or (self._full is not None and self._full()):
            await self.flush()

    async def flush_if_waiting(self) -> None:
        """For a timer: flush if the stage holds records and has waited ``idle`` for its next one, or
        if the last flush is ``interval`` old (also in the middle of a long record)."""
        now = self._clock()
        waited = self._in_records == 0 and now - self._waiting_since >= self.idle
        if now >= self._due or (self._held and waited):
            await self.flush()

    async def wait_for_records(self, timeout: float) -> None:
        """For a timer, while the stage is not :attr:`busy`: return when a record begins, or after
        ``timeout``. A timer ticking every ``idle`` (2 ms) kept an idle worker at 7% of a core; waiting,
        it idles at 3% (``python -m bench.trickle``)."""
        self.activity.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.activity.wait(), timeout)

    async def flush(self) -> None:
        async with self._lock:
            self._due = self._clock() + self.interval
            self._held = 0
            await self._flush()
