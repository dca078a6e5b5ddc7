"""Small aiokafka helpers shared by the CLI, the demo and the tests: topics, publishing, reading.

Every helper takes the ``security`` of :class:`streams.settings.KafkaSecurity` (plain text by default)
and builds its clients with :func:`client_options`, the one place that turns it into aiokafka's
arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from streams.settings import PLAINTEXT, KafkaSecurity

__all__ = [
    "Record",
    "client_options",
    "committed_offset",
    "create_topics",
    "ensure_topics",
    "partition_count",
    "partition_counts",
    "partition_counts_by",
    "publish",
    "read_batches",
    "read_range",
    "read_records",
    "read_to_end",
    "send_batched",
    "ssl_context",
]


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The TLS context ``security`` asks for (None without TLS)."""
    if not security.uses_tls:
        return None
    return create_ssl_context(cafile=str(security.ssl_cafile) if security.ssl_cafile else None)


def client_options(security: KafkaSecurity) -> dict[str, Any]:
    """The keyword arguments that make an aiokafka client (producer, consumer, admin) connect as
    ``security`` says. Besides faust's credentials (``streams.service``) and a worker's environment
    (``streams.supervision``), this is the only place the password is revealed."""
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if (context := ssl_context(security)) is not None:
        options["ssl_context"] = context
    if security.uses_sasl:
        assert security.password is not None  # checked by KafkaSecurity
        options |= {
            "sasl_mechanism": security.sasl_mechanism,
            "sasl_plain_username": security.username,
            "sasl_plain_password": security.password.get_secret_value(),
        }
    return options


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int = -1
    offset: int = -1


async def create_topics(
    bootstrap: str, names: Iterable[str], *, partitions: int = 4, security: KafkaSecurity = PLAINTEXT
) -> None:
    """Create the topics that do not exist yet, each with ``partitions`` partitions."""
    await ensure_topics(bootstrap, dict.fromkeys(names, partitions), security=security)


async def ensure_topics(
    bootstrap: str,
    partitions_by_topic: dict[str, int],
    *,
    configs: dict[str, dict[str, str]] | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create the missing topics with their partition counts (and ``configs`` by topic name), and
    refuse to go on if an existing one has another count (the service addresses partitions
    explicitly). Returns once every topic is described with its partitions."""
    configs = configs or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, count, 1, topic_configs=configs.get(name, {}))
            for name, count in partitions_by_topic.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        described = await admin.describe_topics(list(partitions_by_topic))
        for _ in range(50):  # a topic just created may not be described with its partitions yet
            if all(t["partitions"] for t in described):
                break
            await asyncio.sleep(0.2)
            described = await admin.describe_topics(list(partitions_by_topic))
    finally:
        await admin.close()
    for topic in described:
        wanted = partitions_by_topic[topic["topic"]]
        if len(topic["partitions"]) != wanted:
            raise RuntimeError(
                f"topic {topic['topic']} has {len(topic['partitions'])} partitions, the service needs {wanted}"
            )


async def partition_count(bootstrap: str, topic: str, *, security: KafkaSecurity = PLAINTEXT) -> int:
    """How many partitions a topic has (0 if it does not exist)."""
    return (await partition_counts(bootstrap, [topic], security=security))[topic]


async def partition_counts(
    bootstrap: str, topics: Iterable[str], *, security: KafkaSecurity = PLAINTEXT
) -> dict[str, int]:
    """How many partitions each topic has (0 if it does not exist), in one request."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(security))
    await admin.start()
    try:
        return await partition_counts_by(admin, topics)
    finally:
        await admin.close()


async def partition_counts_by(admin: AIOKafkaAdminClient, topics: Iterable[str]) -> dict[str, int]:
    """:func:`partition_counts`, asked through an admin client the caller has started (and uses for
    more)."""
    topics = list(topics)
    described = await admin.describe_topics(topics)
    counts = dict.fromkeys(topics, 0)
    for t in described:
        if t["error_code"] == 0:
            counts[t["topic"]] = len(t["partitions"])
    return counts


async def publish(bootstrap: str, records: Iterable[Record], *, security: KafkaSecurity = PLAINTEXT) -> int:
    """Send every record (batched, not awaited one by one) to its partition, or its key's when it names
    none, and wait for all acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **client_options(security))
    await producer.start()
    try:
        futures = [
            await producer.send(r.topic, r.value, key=r.key, partition=r.partition if r.partition >= 0 else None)
            for r in records
        ]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def send_batched(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[int, bytes | None, bytes]]
) -> list[asyncio.Future[Any]]:
    """Queue ``(partition, key, value)`` records as one record batch per partition (more if one
    fills), in their order within each partition; returns the batches' delivery futures, not awaited.

    A producer's ``send`` builds each record apart, with a future of its own, in Python: FAUST.md
    measured a consume → produce loop at 40k records/s sending to a given partition, and at 102k/s with
    ``send_batch``. A worker announces ~20 match events per input event. A batch waits for the previous
    one of its partition to leave the producer (aiokafka's ``add_batch``), so a partition's records keep
    their order. Each batch is closed before it is queued: it holds all it will hold, and aiokafka
    sends a closed batch at once, where an open one waits out the producer's linger for records that
    will not come (``producer_linger_s``, which the worker's other sends keep)."""
    by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for partition, key, value in records:
        by_partition.setdefault(partition, []).append((key, value))
    deliveries = []
    for partition, pairs in sorted(by_partition.items()):
        batch = producer.create_batch()
        for key, value in pairs:
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value) is None:
                    raise ValueError(f"a record of {len(value)} bytes does not fit in an empty batch")
        batch.close()
        deliveries.append(await producer.send_batch(batch, topic, partition=partition))
    return deliveries


async def read_records(
    bootstrap: str, topic: str, *, count: int, timeout_s: float = 30.0, security: KafkaSecurity = PLAINTEXT
) -> list[Record]:
    """Read ``count`` records of ``topic`` from the beginning, or fail after ``timeout_s``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_options(security),
    )
    records: list[Record] = []
    try:
        await consumer.start()
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    records.extend(
                        Record(m.topic, m.key, m.value, m.partition, m.offset) for m in messages if m.value is not None
                    )
    except TimeoutError:
        raise TimeoutError(f"read {len(records)} of {count} records of {topic} in {timeout_s}s") from None
    finally:
        await consumer.stop()
    return records


async def read_to_end(
    bootstrap: str, topic: str, partitions: Iterable[int] | None = None, *, security: KafkaSecurity = PLAINTEXT
) -> list[bytes]:
    """The values of a topic (or of some of its partitions) from the beginning to the end they have at
    the time of the call, partition by partition, without joining a consumer group."""
    return [value async for batch in read_batches(bootstrap, topic, partitions, security=security) for value in batch]


async def read_batches(
    bootstrap: str, topic: str, partitions: Iterable[int] | None = None, *, security: KafkaSecurity = PLAINTEXT
) -> AsyncIterator[list[bytes]]:
    """:func:`read_to_end` a fetch at a time (at most 10,000 values each), for a reader that folds a
    large topic as it goes rather than holding all of it (``patent.matches`` after a backlog of 100k
    listings in ``bench.e2e``: 2.4M events of ~740 bytes), and gives the event loop a turn between
    batches."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options(security))
    try:
        await consumer.start()
        if partitions is None:
            partitions = range(await partition_count(bootstrap, topic, security=security))
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
                yield [m.value for m in batch.get(tp, []) if m.value is not None]
    finally:
        await consumer.stop()


async def committed_offset(
    bootstrap: str, group: str, topic: str, partition: int, *, security: KafkaSecurity = PLAINTEXT
) -> int:
    """Where ``group`` resumes a partition: its committed offset, or the start of the log when it has
    none (the service reads from the earliest offset)."""
    tp = TopicPartition(topic, partition)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(security))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options(security))
    try:
        await admin.start()
        for attempt in range(20):  # a broker's offsets topic may still be coming up
            try:
                committed = (await admin.list_consumer_group_offsets(group, partitions=[tp])).get(tp)
                break
            except KafkaError as exc:
                if not exc.retriable or attempt == 19:
                    raise
                await asyncio.sleep(0.5)
        if committed is not None and committed.offset >= 0:
            return int(committed.offset)
        await consumer.start()
        return int((await consumer.beginning_offsets([tp]))[tp])
    finally:
        await consumer.stop()
        await admin.close()


async def read_range(
    bootstrap: str, topic: str, partition: int, start: int, end: int, *, security: KafkaSecurity = PLAINTEXT
) -> list[Record]:
    """The records of one partition with offsets in ``[start, end)``, without joining a group (an empty
    range reads nothing and connects to nothing)."""
    if end <= start:
        return []
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options(security))
    records: list[Record] = []
    try:
        await consumer.start()
        consumer.assign([tp])
        consumer.seek(tp, start)
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
            records += [
                Record(m.topic, m.key, m.value, m.partition, m.offset) for m in batch.get(tp, []) if m.offset < end
            ]
    finally:
        await consumer.stop()
    return records
