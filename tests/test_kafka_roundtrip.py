"""First contact with the real broker: example events published with aiokafka, read back, decoded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson
from aiokafka import AIOKafkaProducer

from schemas import EVENT_TYPES, Rejection, decode, entity_id
from streams.examples import decode_example, example_events
from streams.kafka_io import Record, create_topics, publish, read_records, send_batched
from streams.replay import publish_log
from streams.settings import Settings


async def test_examples_survive_a_round_trip_through_kafka(kafka_bootstrap: str, topic_prefix: str) -> None:
    topics = {kind: f"{topic_prefix}.{kind}" for kind in EVENT_TYPES}
    await create_topics(kafka_bootstrap, topics.values(), partitions=2)
    records = []
    for example in example_events():
        event = decode_example(example)
        assert not isinstance(event, Rejection)
        records.append(Record(topics[example.kind], entity_id(event).encode(), example.raw))
    assert await publish(kafka_bootstrap, records) == len(records)

    for kind, topic in topics.items():
        sent = {r.key: r.value for r in records if r.topic == topic}
        received = await read_records(kafka_bootstrap, topic, count=len(sent))
        assert {r.key: r.value for r in received} == sent
        for record in received:
            event = decode(record.value, EVENT_TYPES[kind])
            assert isinstance(event, EVENT_TYPES[kind])
            assert entity_id(event).encode() == record.key


async def test_a_paced_replay_draws_each_record_when_it_is_due(kafka_bootstrap: str, topic_prefix: str) -> None:
    """A benchmark stamps each record as the replay draws it: drawn early, a record's latency would
    include the replay's own wait for its turn (a whole interval at a slow rate)."""
    topic = f"{topic_prefix}.due"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    rate_per_s = 20
    asked_at: list[float] = []

    def records() -> Iterator[tuple[str, bytes, bytes]]:
        for i in range(5):
            asked_at.append(time.monotonic())
            yield topic, b"k", str(i).encode()

    assert await publish_log(kafka_bootstrap, Settings(), records(), rate_per_s=rate_per_s) == 5
    # Record i is due i intervals after the first; drawn after the send before it, it came an interval early.
    since_first = [at - asked_at[0] for at in asked_at]
    assert all(since >= (i - 0.2) / rate_per_s for i, since in enumerate(since_first)), since_first


async def test_a_throttled_replay_waits_then_resumes_its_pace_without_a_burst(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.paced"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    rate_per_s = 500
    asked_at: list[float] = []
    throttled = 0

    def records() -> Iterator[tuple[str, bytes, bytes]]:
        for i in range(250):
            asked_at.append(time.monotonic())  # record i is asked for when it is due
            yield topic, b"k", str(i).encode()

    async def throttle() -> None:
        nonlocal throttled
        throttled += 1
        if throttled == 2:
            await asyncio.sleep(0.5)

    assert await publish_log(kafka_bootstrap, Settings(), records(), rate_per_s=rate_per_s, throttle=throttle) == 250
    assert throttled == 3  # before records 0, 100 and 200
    # Records 100-199 went out after the half-second wait: paced over ~0.2 s, not sent at once to catch up.
    assert asked_at[200] - asked_at[101] > 0.75 * 99 / rate_per_s
    received = await read_records(kafka_bootstrap, topic, count=250)
    assert [r.value for r in received] == [str(i).encode() for i in range(250)]


async def test_batched_sends_keep_each_partitions_order_across_full_batches(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """:func:`send_batched` (the worker's match events): one batch per partition, a new one when it is
    full, and on the broker each partition holds its records in the order given."""
    topic = f"{topic_prefix}.batched"
    await create_topics(kafka_bootstrap, [topic], partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=16 * 1024)
    await producer.start()
    try:
        records = [(n % 3, f"k{n}".encode(), orjson.dumps({"n": n, "pad": "x" * 500})) for n in range(300)]
        deliveries = await send_batched(producer, topic, records)
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    assert len(deliveries) >= 9  # 100 records of ~530 bytes per partition, in batches of 16 KB
    received = await read_records(kafka_bootstrap, topic, count=300)
    for partition in range(3):
        got = [(r.key, orjson.loads(r.value or b"")["n"]) for r in received if r.partition == partition]
        assert got == [(f"k{n}".encode(), n) for n in range(300) if n % 3 == partition]


async def test_batched_sends_leave_without_waiting_out_the_producers_linger(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A batch of :func:`send_batched` holds all it will hold: it is sent at once, not after the
    producer's linger (the worker's other sends keep theirs)."""
    topic = f"{topic_prefix}.unlingered"
    await create_topics(kafka_bootstrap, [topic], partitions=2)
    linger_s = 5.0
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=int(linger_s * 1000))
    await producer.start()
    try:
        await send_batched(producer, topic, [(0, b"warm", b"{}")])  # metadata fetched, connection open
        began = time.monotonic()
        deliveries = await send_batched(producer, topic, [(n % 2, b"k", b"{}") for n in range(10)])
        await asyncio.wait_for(asyncio.gather(*deliveries), timeout=linger_s / 2)
        delivered_s = time.monotonic() - began
    finally:
        await producer.stop()
    assert delivered_s < linger_s / 2
