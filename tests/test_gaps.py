"""The gap guard on the real broker: records the consumer skipped are read back from the log, in order,
and nothing is read when there is no gap."""

from __future__ import annotations

from streams.gaps import GapGuard
from streams.kafka_io import Record, create_topics, publish
from streams.settings import PLAINTEXT


async def test_a_gap_is_read_from_the_log_and_no_gap_reads_nothing(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}.input"
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    await publish(kafka_bootstrap, [Record(topic, b"k", f"v{i}".encode(), 0) for i in range(10)])
    guard = GapGuard(kafka_bootstrap, f"{topic_prefix}-group", PLAINTEXT)

    assert await guard.missed(topic, 0, 0) == []  # no commit yet: the log's start is expected
    assert await guard.missed(topic, 0, 1) == []
    skipped = await guard.missed(topic, 0, 5)
    assert [(r.offset, r.value) for r in skipped] == [(2, b"v2"), (3, b"v3"), (4, b"v4")]
    assert await guard.missed(topic, 0, 6) == []
    assert await guard.missed(topic, 0, 3) == [], "a record handed again is no gap"

    guard.forget(topic, 0)  # revoked and assigned again: back to the group's committed offset (none)
    assert [r.offset for r in await guard.missed(topic, 0, 2)] == [0, 1]
