"""Work held back while records come, and done in one go: answers, and match events.

Answering the merger after every shard-log record, and announcing after every answer, costs a Kafka
record (about 170 µs of faust's own time to consume, FAUST.md) per seeker touched: ten and more per
input event. A :class:`Batch` runs its flush at most every ``interval`` while records come. When they
stop, a timer (:meth:`Batch.flush_if_waiting`) runs it once the stage has waited ``idle`` for its next
record: in a backlog the next record is always there and batches stay ``interval`` long or longer, while
at a trickle a record's answers and match events leave within a few milliseconds, not up to ``interval``.

A stage that is behind holds its batch longer, up to ``longest``: a quarter of the lateness of the
record it last took (:data:`LATENESS_SHARE`). In a backlog, records wait seconds, and a longer batch
costs them little while a seeker touched by several events is answered and announced once; a record
taken on time still leaves within ``interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

__all__ = ["LATENESS_SHARE", "Batch"]

LATENESS_SHARE = 0.25
"""How long a batch may be held, as a share of the lateness of the record last taken."""


class Batch:
    def __init__(
        self,
        flush: Callable[[], Awaitable[None]],
        *,
        interval: float,
        idle: float,
        longest: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        activity: asyncio.Event | None = None,
    ) -> None:
        self._flush = flush
        self.interval = interval
        self.idle = idle
        self.longest = interval if longest is None else max(interval, longest)
        self._clock = clock
        self._flushed_at = clock()
        self._due = self._flushed_at + interval
        self._held = 0
        """Records taken since the last flush began."""
        self._in_record = False
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
        return self._in_record or self._held > 0

    def before_record(self) -> None:
        self._in_record = True
        self.activity.set()

    async def after_record(self, lateness: float = 0.0) -> None:
        """Called after each record, with how late it was taken (seconds from its timestamp): flushes if
        the last flush is ``interval`` old, or, for a late record, a share of its lateness (up to
        ``longest``)."""
        self._in_record = False
        self._held += 1
        self._waiting_since = self._clock()
        held_for = min(self.longest, max(self.interval, LATENESS_SHARE * lateness))
        self._due = self._flushed_at + held_for
        if self._waiting_since >= self._due:
            await self.flush()

    async def flush_if_waiting(self) -> None:
        """For a timer: flush if the stage holds records and has waited ``idle`` for its next one, or
        if the last flush is ``interval`` old (also in the middle of a long record)."""
        now = self._clock()
        waited = not self._in_record and now - self._waiting_since >= self.idle
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
            self._flushed_at = self._clock()
            self._due = self._flushed_at + self.interval
            self._held = 0
            await self._flush()
