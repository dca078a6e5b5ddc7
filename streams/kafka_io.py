"""Small aiokafka helpers shared by the CLI, the demo and the tests: topics, publishing, reading."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

__all__ = ["Record", "create_topics", "publish", "read_records"]


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes
    partition: int = -1
    offset: int = -1


async def create_topics(bootstrap: str, names: Iterable[str], *, partitions: int = 4) -> None:
    """Create the topics that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def publish(bootstrap: str, records: Iterable[Record]) -> int:
    """Send every record (batched, not awaited one by one) and wait for all acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def read_records(bootstrap: str, topic: str, *, count: int, timeout_s: float = 30.0) -> list[Record]:
    """Read ``count`` records of ``topic`` from the beginning, or fail after ``timeout_s``."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Record] = []
    try:
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
