"""A faust table whose changelog writes are handed to the producer before the event is acknowledged.

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
"""

from __future__ import annotations

from typing import Any

import faust
from faust.serializers import codecs

__all__ = ["WrittenThroughTable", "written_through_table"]


class WrittenThroughTable(faust.Table):  # type: ignore[misc]  # faust's classes are untyped
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: list[tuple[int | None, Any, bytes | None]] = []

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


def written_through_table(app: faust.App, name: str, *, partitions: int) -> WrittenThroughTable:
    """A str → bytes table registered with ``app`` like ``app.Table`` would."""
    table = WrittenThroughTable(
        app,
        name=name,
        partitions=partitions,
        key_type=str,
        value_type=bytes,
        beacon=app.tables.beacon,
    )
    app.tables.add(table)
    return table
