"""What an event costs the worker at a trickle, by rate: CPU, latency, and the Kafka records it makes.

    python -m bench.trickle [--size 5000] [--events 1000] [--rates 80,40,20,80] [--shards 2]

One worker starts on a backlog of ``size`` generated listings and drains it. Then it idles for
``--idle-s`` seconds, which gives its CPU share when nothing comes (``idle_cpu_share``: faust's and
aiokafka's loops and timers, the stages' flush timer). Then, for each rate in turn, ``events``
more events of the market's life (updates, withdrawals, new listings) are published at that rate,
and the phase reports:

- ``cpu_ms_per_event``: the worker's CPU time (``process_cpu_seconds_total``) over the phase, per
  event. The phase includes about six quiet seconds (a second before the first event, five after the
  last match), which add ``idle_cpu_share`` × 6 s / ``events`` to it;
- ``latency_p50_ms``, ``latency_p99_ms``: from an event's publication to its match events being read
  back, as ``bench.e2e`` measures it;
- ``record_age_ms``: per stage, the p50 and p99 age of the records it took (from each record's
  timestamp on its topic): each hop's own wait, as ``bench.e2e`` splits its latency phase;
- ``records_per_event``: records added to each of the app's topics per event, from the topics' end
  offsets: the inputs (which this bench publishes) and what the worker writes (the shard log, the
  answer bundles, the match events, the tables' changelogs);
- ``records_taken_per_event``: the records the worker's agents consume per event (the inputs, the
  shard log, the answer bundles).

``bench.e2e`` measures the latency at one rate, half the backlog's; this shows how an event's cost
depends on the rate while its records do not. Prints one JSON object. Starts its own local broker
unless ``PATENTMATCH_KAFKA_BOOTSTRAP`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bench.e2e import CPU_SECONDS, broker_bootstrap, caught_up, latency, latency_split
from matcher.market import Market
from streams.harness import health_until_ready, metric_total, scrape_metrics
from streams.kafka_io import ensure_topics, partition_counts
from streams.replay import publish_log, record_of
from streams.service import public_topics, source_topics
from streams.settings import Settings
from streams.supervision import Deployment, WorkerProcess


async def end_offsets(bootstrap: str, prefix: str) -> dict[str, int]:
    """Records ever written to each topic whose name starts with ``prefix``, summed over partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        names = sorted(t for t in await consumer.topics() if t.startswith(prefix) and "__assignor" not in t)
        counts = await partition_counts(bootstrap, names)
        ends = await consumer.end_offsets([TopicPartition(t, p) for t in names for p in range(counts[t])])
    finally:
        await consumer.stop()
    totals = dict.fromkeys(names, 0)
    for tp, offset in ends.items():
        totals[tp.topic] += offset
    return totals


async def drained(bootstrap: str, deployment: Deployment, *, timeout_s: float = 3600) -> None:
    """Wait until the worker's group has committed the end of everything it reads."""
    watched = source_topics(deployment.settings)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(KafkaError):  # the group's coordinator is not known at first
            if await caught_up(bootstrap, deployment.name, watched):
                return
        await asyncio.sleep(1)
    raise TimeoutError("the worker did not drain its backlog")


async def cpu_seconds(worker: WorkerProcess) -> float:
    return metric_total(await scrape_metrics(worker), CPU_SECONDS)


async def phase(
    deployment: Deployment, worker: WorkerProcess, documents: list[dict[str, Any]], rate: float
) -> dict[str, Any]:
    """Publish ``documents`` at ``rate``: the worker's CPU, the latency and the records per event."""
    before = await end_offsets(deployment.bootstrap, deployment.name)
    page_before = await scrape_metrics(worker)
    latencies, _ = await latency(deployment, documents, rate=rate)
    page_after = await scrape_metrics(worker)
    after = await end_offsets(deployment.bootstrap, deployment.name)
    events = len(documents)
    split = latency_split([page_before], [page_after], events=events, rate=rate)
    added = {topic: after[topic] - before.get(topic, 0) for topic in after}
    taken = sum(added[topic] for topic in source_topics(deployment.settings))
    # Named without the deployment's prefix and its separator: ``shard-log``, ``answers-changelog``…
    per_topic = {topic[len(deployment.name) + 1 :]: round(n / events, 2) for topic, n in added.items()}
    return {
        "rate_events_per_s": rate,
        "events": events,
        "cpu_ms_per_event": split["latency_cpu_ms_per_event"],
        "latency_matches": len(latencies),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "record_age_ms": split["latency_record_age_ms"],
        "records_per_event": per_topic,
        "records_taken_per_event": round(taken / events, 2),
    }


async def measure(
    bootstrap: str, size: int, events: int, rates: list[float], idle_s: float, shards: int
) -> dict[str, Any]:
    market = Market(100)
    backlog = market.listings(size, expiring=0.0)
    later = market.lifecycle(events * len(rates))
    deployment = Deployment(bootstrap, shards=shards)
    settings: Settings = deployment.settings
    await ensure_topics(bootstrap, public_topics(settings))
    await publish_log(bootstrap, settings, [record_of(d, settings.topics) for d in backlog])
    worker = deployment.start_worker()
    try:
        await health_until_ready(worker, timeout_s=600)
        await drained(bootstrap, deployment)
        idle_from, idle_cpu = time.monotonic(), await cpu_seconds(worker)
        await asyncio.sleep(idle_s)
        idle_share = (await cpu_seconds(worker) - idle_cpu) / (time.monotonic() - idle_from)
        phases = [
            await phase(deployment, worker, later[i * events : (i + 1) * events], rate) for i, rate in enumerate(rates)
        ]
    finally:
        deployment.stop_all()
    return {"size": size, "shards": shards, "idle_cpu_share": round(idle_share, 3), "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=5000, help="listings in the backlog the worker drains first")
    parser.add_argument("--events", type=int, default=1000, help="events per rate")
    parser.add_argument("--rates", default="80,40,20,80", help="events per second, one phase each, in this order")
    parser.add_argument("--idle-s", type=float, default=30.0, help="how long the idle CPU share is measured")
    parser.add_argument("--shards", type=int, default=2, help="the worker's shards: 1 is a direct worker")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    with contextlib.ExitStack() as stack:
        result = asyncio.run(measure(broker_bootstrap(stack), args.size, args.events, rates, args.idle_s, args.shards))
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
