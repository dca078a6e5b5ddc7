"""Records a faust agent was never handed, read from the log directly.

After a rebalance, faust-streaming can resume fetching a partition before it seeks to the committed
offset (faust-streaming issue #216): the agent is then handed a later record first, and the ones
between are skipped, acknowledged by the offsets that follow, and lost. Measured here in
``bench.reliability``'s rebalance scenario as one input record consumed and committed but never
routed, and so 56 open matches missing for good.

:class:`GapGuard` knows the offset each partition should hand the agent next: after an assignment
the consumer group's committed offset, then one past the last record taken. A record beyond it means
a gap, which the guard reads from the log for the agent to process first. Reading again what was
already processed is harmless (the service is idempotent); skipping is not.

The guard sees a gap only when a later record of the partition comes. faust-streaming also drops
records while it recovers a table: its fetcher asks aiokafka for the records of the *active*
partitions, passing its live set, which the recovery empties when the changelog is read (aiokafka
takes an empty set as "every partition"); the records of the stream partitions (inputs, shard log)
that come back are not active, and faust drops them, counting on its seek to the committed offsets
afterwards to read them again. aiokafka's ``seek_to_committed`` skips a partition whose committed
offset is 0 or none, so those records were lost for good, with no later record for the guard to
notice: measured here as a SIGKILL restart (one shard) that never read 346 of 443 records of a
partition the killed worker had not committed yet, and missed 1,897 open matches.
:class:`SeekingConsumer` seeks those partitions to their start.

The same dropping can cost a table its recovery. A fetch may still be waiting when a rebalance
begins, and faust's live set of active partitions goes empty while it waits, so it returns the
records of every partition. If it returns after the recovery has sought a changelog back to its
start but before faust resumes its flow, faust drops the changelog's records too (its flow is not
active), and nothing seeks that changelog again: the recovery then waits for ever for records it
will never be handed. Measured here on a worker that a second one joined while it was busy (the
changelog read to its end by that fetch, the recovery stuck with "No event received", the open
matches never complete: CI, 5 December). :class:`GivingBackConsumerThread` seeks every partition
of such a fetch back to its first record, so the next fetch returns the records again. It also
keeps faust's livelock check from reading the position of a partition whose offset is being reset
(aiokafka asserts it is set, and the assertion crashed a worker).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as aiokafka_driver

from streams.kafka_io import Record, committed_offset, read_range
from streams.settings import KafkaSecurity

__all__ = ["GapGuard", "GivingBackConsumerThread", "SeekingConsumer", "seek_uncommitted_partitions_too"]

log = logging.getLogger("patentmatch.gaps")


class GapGuard:
    def __init__(self, bootstrap: str, group: str, security: KafkaSecurity) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.security = security
        self._next: dict[tuple[str, int], int] = {}

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked: after it comes back, start from the committed offset again."""
        self._next.pop((topic, partition), None)

    async def missed(self, topic: str, partition: int, offset: int) -> list[Record]:
        """The records before ``offset`` that the agent should have been handed and was not."""
        key = (topic, partition)
        expected = self._next.get(key)
        if expected is None:
            expected = await committed_offset(self.bootstrap, self.group, topic, partition, security=self.security)
        self._next[key] = max(expected, offset + 1)
        if offset <= expected:
            return []
        gap = await read_range(self.bootstrap, topic, partition, expected, offset, security=self.security)
        log.warning(
            "records skipped by the consumer, read from the log",
            extra={"topic": topic, "partition": partition, "from": expected, "to": offset, "records": len(gap)},
        )
        return gap


class GivingBackConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):  # type: ignore[misc]
    """faust's aiokafka consumer thread, which gives back the records of a fetch that returns while
    faust's flow is stopped: faust would drop them, so each of their partitions is sought back to its
    first record. The check and the seek are in the thread that fetches, in the same step as the
    fetch's return, so a seek made since (by a recovery) is the one the records came from. Its
    livelock check also leaves alone a partition whose offset is being reset."""

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[Any],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> dict[Any, list[Any]]:
        records: dict[Any, list[Any]] = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        if records and not self.consumer.flow_active:
            assigned = consumer.assignment()
            for tp, batch in records.items():
                if tp in assigned:
                    consumer.seek(tp, batch[0].offset)
            log.info("records fetched while the flow was stopped, given back", extra={"partitions": len(records)})
            return {}
        return records

    def verify_event_path(self, now: float, tp: Any) -> None:
        """faust's livelock check reads the partition's position, which aiokafka asserts is set; a
        partition sought to its start (at an assignment, or by a recovery) has none until its offset
        is fetched, and the assertion crashed the worker. Such a partition is checked once it has one."""
        subscription = self._ensure_consumer()._fetcher._subscriptions.subscription
        assignment = subscription.assignment if subscription is not None else None
        state = assignment.state_value(aiokafka.TopicPartition(tp.topic, tp.partition)) if assignment else None
        if state is not None and not state.has_valid_position:
            return
        super().verify_event_path(now, tp)


class SeekingConsumer(aiokafka_driver.Consumer):  # type: ignore[misc]  # faust's classes are untyped
    """faust's consumer, whose seek to the committed offsets also seeks the stream partitions that
    have none (or 0) to their start, as ``auto_offset_reset="earliest"`` means. Changelogs are left
    alone: the recovery seeks them itself, and the group commits no offset for them. Its thread is a
    :class:`GivingBackConsumerThread`."""

    def _new_consumer_thread(self) -> GivingBackConsumerThread:
        return GivingBackConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def seek_to_committed(self) -> Mapping[Any, int | None]:
        committed: Mapping[Any, int | None] = await super().seek_to_committed()
        unsought = [tp for tp, offset in committed.items() if not offset and not self._is_changelog_tp(tp)]
        if unsought:
            await self._thread.seek_to_beginning(*unsought)
        return committed


class _SeekingTransport(aiokafka_driver.Transport):  # type: ignore[misc]
    Consumer = SeekingConsumer


def seek_uncommitted_partitions_too(app: faust.App) -> None:
    """Give ``app`` the :class:`SeekingConsumer` and its :class:`GivingBackConsumerThread` (before it
    starts: the transport makes the consumer)."""
    app.transport = _SeekingTransport(app.conf.broker_consumer, app)
