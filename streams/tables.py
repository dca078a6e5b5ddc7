"""A faust table whose changelog writes are handed to the producer before the event is acknowledged,
and a watch that says when the tables are recovered for the worker's current assignment.

A plain ``faust.Table`` puts each changelog write into faust's producer buffer and drains it in the
background. Before committing offsets faust flushes that buffer, but the flush gives up as soon as
0.1 s pass without a message leaving it (``ProducerBuffer.flush_atmost``) — which happens whenever an
agent holds the event loop that long. The offsets are then committed past events whose table writes
were never sent, and a crash loses those writes for good: measured here as hundreds of missing and
stale matches after a SIGKILL in the middle of a replay.

:class:`WrittenThroughTable` keeps the writes of the current event and sends them with the producer
itself (:meth:`write_through`, awaited by the agent before it takes the next event). The producer is
flushed, waiting for every acknowledgement, before any offset is committed, so a committed offset
implies its table writes are in the changelog.

:class:`RecoveryWatch` answers "may a shard be built from the table now?". faust's own flags do not:
it calls the tables' ``on_recover`` also for a recovery the next rebalance cut short, before it checks
the generation, and that recovery's tail then sets ``actives_ready`` and clears ``rebalancing`` in the
middle of the next rebalance (``Recovery.on_recovery_completed``, faust-streaming 0.15.3). A shard built
then was built from a table half replayed, or not yet read at all (a shard of 0 seekers), and stayed
wrong: hundreds to thousands of open matches missing and extra (``bench/JOURNAL.md``, 4 December).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import faust
from faust.serializers import codecs
from faust.tables import TableManager
from faust.tables.recovery import Recovery

__all__ = ["RecoveryWatch", "WatchedTableManager", "WrittenThroughTable", "written_through_table"]


class WrittenThroughTable(faust.Table):  # type: ignore[misc]  # faust's classes are untyped
    """``partition_of`` gives a key's changelog partition; without it faust's choice holds, the partition
    of the record being processed, which faust first checks is co-partitioned with the changelog."""

    def __init__(self, *args: Any, partition_of: Callable[[str], int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: list[tuple[int | None, Any, bytes | None]] = []
        self._partition_of = partition_of

    def partition_for_key(self, key: Any) -> int | None:
        if self._partition_of is not None:
            return self._partition_of(key)
        return cast(int | None, super().partition_for_key(key))

    def on_key_set(self, key: Any, value: Any) -> None:
        self._unsent.append((self.partition_for_key(key), key, value))
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        self._unsent.append((self.partition_for_key(key), key, None))
        self._sensor_on_del(self, key)

    async def write_through(self) -> None:
        """Hand every write made since the last call to the producer (not to faust's buffer)."""
        unsent, self._unsent = self._unsent, []
        topic = self.changelog_topic.get_topic_name()
        for partition, key, value in unsent:
            raw_key = codecs.dumps(self.key_serializer, key)
            await self.app.producer.send(topic, raw_key, value, partition, None, None)


def written_through_table(
    app: faust.App, name: str, *, partitions: int, partition_of: Callable[[str], int] | None = None
) -> WrittenThroughTable:
    """A str → bytes table registered with ``app`` like ``app.Table`` would."""
    table = WrittenThroughTable(
        app,
        name=name,
        partitions=partitions,
        partition_of=partition_of,
        key_type=str,
        value_type=bytes,
        beacon=app.tables.beacon,
    )
    app.tables.add(table)
    return table


class _GenerationRecovery(Recovery):  # type: ignore[misc]
    """faust's recovery, remembering the consumer generation of the last recovery that ran to its end
    (cut-short ones included: the watch compares it with the current generation)."""

    completed_generation: int = -1

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        await super().on_recovery_completed(generation_id)
        self.completed_generation = generation_id


class WatchedTableManager(TableManager):  # type: ignore[misc]
    """faust's table manager with :class:`_GenerationRecovery` (``faust.App(TableManager=...)``)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = _GenerationRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class RecoveryWatch:
    """Whether the app's tables hold the recovered state of its current assignment: no revocation since
    the last assignment, and the recovery that last ran to its end was that assignment's generation.

    A revocation always precedes the next assignment, so between the two (where faust's consumer may
    already report the new partitions and the old generation) the answer is no."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._revoked = True
        app.on_partitions_revoked.connect(self._on_revoked)
        app.on_partitions_assigned.connect(self._on_assigned)

    async def _on_revoked(self, sender: Any, revoked: Any, **_: Any) -> None:
        self._revoked = True

    async def _on_assigned(self, sender: Any, assigned: Any, **_: Any) -> None:
        self._revoked = False

    def recovered(self) -> bool:
        recovery = self.app.tables.recovery
        if self._revoked or not isinstance(recovery, _GenerationRecovery):
            return False
        return bool(recovery.completed_generation == self.app.consumer_generation_id)
