"""Records faust would skip, on the real broker: the gap guard reads them back from the log, in order,
and nothing when there is no gap; a restarted worker reads the partitions its group never committed;
shard-log records the group committed but the book never took are replayed when a shard is built; and
a fetch that returns while faust's flow is stopped gives its records back."""

from __future__ import annotations

import asyncio
import time

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import OffsetResetStrategy
from aiokafka.structs import OffsetAndMetadata

from matcher.market import Market
from streams.gaps import GapGuard, GivingBackConsumerThread, seek_uncommitted_partitions_too
from streams.harness import (
    market_events,
    market_records,
    metric_total,
    prepare,
    publish,
    scrape_metrics,
    settle_on_oracle,
    shard_log,
)
from streams.kafka_io import Record, committed_offset, create_topics, ensure_topics
from streams.kafka_io import publish as publish_records
from streams.service import internal_topics
from streams.settings import PLAINTEXT
from streams.supervision import Deployment


async def test_a_gap_is_read_from_the_log_and_no_gap_reads_nothing(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.input"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    await publish_records(kafka_bootstrap, [Record(topic, b"k", f"v{i}".encode(), 0) for i in range(10)])
    guard = GapGuard(kafka_bootstrap, f"{topic_prefix}-group", PLAINTEXT)

    assert await guard.missed(topic, 0, 0) == []  # no commit yet: the log's start is expected
    assert await guard.missed(topic, 0, 1) == []
    skipped = await guard.missed(topic, 0, 5)
    assert [(r.offset, r.value) for r in skipped] == [(2, b"v2"), (3, b"v3"), (4, b"v4")]
    assert await guard.missed(topic, 0, 6) == []
    assert await guard.missed(topic, 0, 3) == [], "a record handed again is no gap"

    guard.forget(topic, 0)  # revoked and assigned again: back to the group's committed offset (none)
    assert [r.offset for r in await guard.missed(topic, 0, 2)] == [0, 1]


async def test_a_restart_reads_the_input_partitions_its_group_never_committed(deployment: Deployment) -> None:
    """The worker restarts with a table to recover and offers waiting in partitions the group has no
    offset for: faust drops what it fetches of them during the recovery (``streams.gaps``), and the
    offers must be read all the same."""
    deployment.shards = 1
    await prepare(deployment)
    documents = Market(13).lifecycle(600, expiring=0.0)
    seekers = [d for d in documents if "offer_id" not in d]
    offers = [d for d in documents if "offer_id" in d]
    worker = deployment.start_worker()
    await publish(deployment, await market_records(deployment, seekers))
    await settle_on_oracle(deployment, market_events(seekers))
    worker.stop()  # SIGTERM: the book's changelog and the seekers' offsets are written
    offers_topic = deployment.topics.offers
    offsets = [
        await committed_offset(deployment.bootstrap, deployment.name, offers_topic, p)
        for p in range(deployment.settings.input_partitions)
    ]
    assert offsets == [0] * deployment.settings.input_partitions

    await publish(deployment, await market_records(deployment, offers))
    deployment.start_worker()
    result = await settle_on_oracle(deployment, market_events(seekers + offers), timeout_s=180)
    assert result.missing == result.extra == result.changed == 0


async def test_shard_log_records_committed_but_never_applied_are_replayed_when_the_shard_is_built(
    deployment: Deployment,
) -> None:
    """A worker lets a shard-log record go unapplied when another rebalance begins while the record
    waits for its shard to be built (faust's revocation waits for it), and faust acknowledges it: the group's
    offset then passes records the book table never took. Here that state is made directly: the whole
    log is on the shard log, committed, and the table is empty. The worker must read the records back
    when it builds the shards, or it never matches anything."""
    await prepare(deployment)
    settings = deployment.settings
    partitions, configs = internal_topics(settings)
    await ensure_topics(deployment.bootstrap, partitions, configs=configs)
    documents = Market(17).lifecycle(300, expiring=0.0)
    log = shard_log(documents, settings)
    topic = settings.topics.shard_log
    await publish_records(
        deployment.bootstrap,
        [Record(topic, key, value, shard) for shard in range(settings.shards) for key, value in log],
    )
    group = AIOKafkaConsumer(bootstrap_servers=deployment.bootstrap, group_id=settings.app_id, enable_auto_commit=False)
    await group.start()
    try:
        shards = [TopicPartition(topic, shard) for shard in range(settings.shards)]
        group.assign(shards)
        await group.commit({tp: OffsetAndMetadata(len(log), "") for tp in shards})
    finally:
        await group.stop()
    assert [
        await committed_offset(deployment.bootstrap, settings.app_id, topic, s) for s in range(settings.shards)
    ] == [len(log)] * settings.shards

    worker = deployment.start_worker()
    result = await settle_on_oracle(deployment, market_events(documents), timeout_s=120)
    assert result.missing == result.extra == result.changed == 0
    assert result.events > 0, "the log makes matches"
    replayed = metric_total(
        await scrape_metrics(worker), "patentmatch_records_read_back_total", topic=topic, why="unapplied"
    )
    assert replayed == len(log) * settings.shards


async def test_a_fetch_that_returns_while_the_flow_is_stopped_gives_its_records_back(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A fetch still waiting when faust stops its flow (a rebalance) returns records faust will drop.
    The worker's consumer thread seeks their partition back to the first of them, so the next fetch
    returns them again: without it a table's recovery lost its changelog this way and waited for ever."""
    topic = f"{topic_prefix}.changelog"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    app = faust.App(f"{topic_prefix}-app", broker=f"kafka://{kafka_bootstrap}")
    seek_uncommitted_partitions_too(app)
    flow = app.consumer
    thread = flow._thread
    assert isinstance(thread, GivingBackConsumerThread)
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        waiting = asyncio.create_task(thread._fetch_records(consumer, {tp}, timeout=20.0))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the topic is empty: the fetch waits"
        flow.stop_flow()
        await publish_records(kafka_bootstrap, [Record(topic, b"k", f"v{i}".encode(), 0) for i in range(5)])
        assert await waiting == {}
        assert await consumer.position(tp) == 0

        flow.resume_flow()
        again = await thread._fetch_records(consumer, {tp}, timeout=20.0)
        assert [(r.offset, r.value) for r in again[tp]] == [(i, f"v{i}".encode()) for i in range(5)]
        assert await consumer.position(tp) == 5
    finally:
        await consumer.stop()
        thread.thread_loop.close()  # made by the thread, never started here


async def test_the_livelock_check_waits_for_a_partition_that_is_being_reset(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """faust's livelock check reads each assigned partition's position, which aiokafka asserts is set.
    A partition sought to its start (at an assignment, or by a recovery) has none until its offset is
    fetched: the check crashed a worker that way (a clean-clone run, 5 December). It now skips such a
    partition and reads it once its position is known."""
    topic = f"{topic_prefix}.input"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    await publish_records(kafka_bootstrap, [Record(topic, b"k", f"v{i}".encode(), 0) for i in range(3)])
    app = faust.App(f"{topic_prefix}-app", broker=f"kafka://{kafka_bootstrap}")
    seek_uncommitted_partitions_too(app)
    thread = app.consumer._thread
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        thread._consumer = consumer
        thread.time_started = time.monotonic()
        consumer.assign([tp])
        consumer.seek(tp, 0)
        assert (await consumer.getmany(tp, timeout_ms=10_000))[tp], "a fetch stamps the partition"

        resetting = consumer._fetcher.request_offset_reset([tp], OffsetResetStrategy.EARLIEST)
        assert not consumer._subscription.subscription.assignment.state_value(tp).has_valid_position
        thread.verify_event_path(time.monotonic(), tp)

        await resetting
        assert await consumer.position(tp) == 0
        thread.verify_event_path(time.monotonic(), tp)
    finally:
        await consumer.stop()
        thread.thread_loop.close()  # made by the thread, never started here
