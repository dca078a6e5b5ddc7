"""Records faust would skip, on the real broker: the gap guard reads them back from the log, in order,
and nothing when there is no gap; a restarted worker reads the partitions its group never committed."""

from __future__ import annotations

from matcher.market import Market
from streams.gaps import GapGuard
from streams.harness import market_events, market_records, prepare, publish, settle_on_oracle
from streams.kafka_io import Record, committed_offset, create_topics
from streams.kafka_io import publish as publish_records
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
