"""What producing a worker's match events costs the worker: one ``send`` per event against
:func:`streams.kafka_io.send_batched`, on one broker, in one process, taking turns; and counting them
in the worker's metrics, label sets looked up for each event against once per batch
(:meth:`streams.metrics.ServiceMetrics.emitted`).

    python -m bench.sends [--events 200000] [--per-batch 400]

The events are the match events a direct worker announces for 2,000 generated listings (repeated to
make up the count), on the four partitions of a fresh topic, sent with the worker's producer settings
(acks=all, linger 5 ms, 1 MB batches, zstd). The two ways take turns, ``per-batch`` events at a time
(one announcement of a backlog's batch), so that both meet the machine as it is. Each side's CPU time
(the process's, not the wall clock: the broker runs beside it) is summed over its turns until its
deliveries are acknowledged, so that the producer's work in the background (compressing, building
requests) counts. The counting sides take turns alike, on the same announcements, without the broker.
Prints one JSON object: microseconds of CPU per event on each side, and their ratios.
Starts its own local broker unless ``PATENTMATCH_KAFKA_BOOTSTRAP`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.e2e import broker_bootstrap
from matcher import MatchingConfig
from matcher.market import Market
from matcher.text import default_analyzer
from streams.harness import shard_log
from streams.kafka_io import ensure_topics, send_batched
from streams.merging import Announcement, Merger
from streams.metrics import ServiceMetrics
from streams.sharding import ShardStage, merge_partition

PARTITIONS = 4
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def announcements(listings: int) -> list[Announcement]:
    """The match events a direct worker announces for a backlog of ``listings`` generated listings,
    answered every 8 events (as :mod:`bench.pipeline` does)."""
    config = MatchingConfig()
    stage = ShardStage({}, shards=1, config=config, analyzer=default_analyzer())
    merger = Merger({}, config=config, shards=1, partitions=PARTITIONS)
    for partition in range(PARTITIONS):
        merger.load(partition, [])
    stage.build(0)
    out: list[Announcement] = []
    for offset, (key, value) in enumerate(shard_log(Market(100).listings(listings))):
        stage.apply(0, offset, key, value)
        if offset % 8 == 7:
            for answer in stage.take_answers(0):
                merger.receive_direct(merge_partition(answer.seeker, PARTITIONS), answer)
            out += merger.take_events(emitted_at=NOW)
    return out


def count_each(metrics: ServiceMetrics, announced: list[Announcement]) -> None:
    """How the worker counted its match events before :meth:`ServiceMetrics.emitted`: the baseline."""
    for out in announced:
        if out.type == "match":
            metrics.matches.labels(out.kind).inc()
        else:
            metrics.revocations.labels(out.kind, out.reason or "superseded").inc()
        metrics.latency.labels(out.type).observe((out.emitted_at - out.occurred_at).total_seconds())


async def measure(bootstrap: str, events: int, per_batch: int) -> dict[str, Any]:
    topic = f"bench-sends-{int(time.time())}"
    await ensure_topics(bootstrap, {topic: PARTITIONS})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=1024 * 1024, compression_type="zstd")  # fmt: skip
    await producer.start()
    made = announcements(2000)
    announced = [made[n % len(made)] for n in range(events)]
    records = [(a.partition, a.seeker_id.encode(), a.value) for a in announced]
    metrics = ServiceMetrics()
    cpu = {"send": 0.0, "send_batched": 0.0, "count_each": 0.0, "count_batched": 0.0}
    try:
        for turn, start in enumerate(range(0, events, per_batch)):
            counting = ("count_each", "count_batched")[turn % 2]
            began = time.process_time()
            if counting == "count_each":
                count_each(metrics, announced[start : start + per_batch])
            else:
                metrics.emitted(announced[start : start + per_batch])
            cpu[counting] += time.process_time() - began
            chunk = records[start : start + per_batch]
            side = ("send", "send_batched")[turn % 2]
            began = time.process_time()
            if side == "send":
                deliveries = [await producer.send(topic, value, key=key, partition=p) for p, key, value in chunk]
            else:
                deliveries = await send_batched(producer, topic, chunk)
            await asyncio.gather(*deliveries)
            cpu[side] += time.process_time() - began
    finally:
        await producer.stop()
    per_side = events / 2
    micros = {side: round(1e6 * seconds / per_side, 1) for side, seconds in cpu.items()}
    return {
        "events": events,
        "bytes_per_event": round(sum(len(value) for _, _, value in records) / events),
        "per_batch": per_batch,
        "send_cpu_us_per_event": micros["send"],
        "send_batched_cpu_us_per_event": micros["send_batched"],
        "ratio": round(micros["send_batched"] / micros["send"], 3),
        "count_each_cpu_us_per_event": micros["count_each"],
        "count_batched_cpu_us_per_event": micros["count_batched"],
        "count_ratio": round(micros["count_batched"] / micros["count_each"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--per-batch", type=int, default=400)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        result = asyncio.run(measure(broker_bootstrap(stack), args.events, args.per_batch))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
