"""End to end on a real broker: how many events per second the service sustains, against the ceiling
of a bare aiokafka consume → parse → produce on the same broker, and event-to-match latency.

    python -m bench.e2e [--size 100000] [--steady-events 20000] [--latency-events 3000] [--workers 1]
                        [--shards 2] [--worker-setting producer_linger_s=0 ...]

1. ``size`` generated listings are published to the input topics first (the backlog that builds the
   book).
2. Passthrough: a raw aiokafka consumer reads the backlog, parses each record with orjson and produces
   it to another topic; its rate is the ceiling for anything built on this broker and client.
3. Book: ``workers`` worker processes of one app start on the backlog (the shard count, ``--shards``,
   is by default the worker count and at least 2, so that each worker has a shard), until the consumer
   group has committed the end of every topic it reads (input, shard log, answers). The backlog over
   that time, the workers' start-up included, is ``book_build_events_per_s``: events into a book that
   grows from empty to ``size``, half as large on average as the one the rate is asked of.
   ``backlog_peak_lag``: the most records the workers had yet to take from the shard log, and from the
   answers (the merger's input), polled every second or so: a merger that falls behind the shards
   announces late, but announces a seeker's net change once for all the answers it caught up on.
4. Service: ``steady-events`` lifecycle events (new listings, updates and withdrawals) are published at
   once onto the built book, and the sustained rate (``service_events_per_s``) is their count over the
   time until the group has committed them all. Then where that time went, from the workers' own
   ``/metrics`` over the phase: the share of their wall time spent in the engine (``engine_share``; the
   rest is decoding, answering, merging and Kafka) and paused by garbage collection (``gc_share``),
   their CPU time per input event (``cpu_ms_per_event``), the engine's milliseconds per input event by
   trigger kind, and the match and revoke events emitted per input event.
5. Latency: ``latency-events`` more events are published at half the sustained rate; for each match
   event, latency is the time it was read back minus the time its trigger event was published, and
   the worker's part of it ends at the event's ``emitted_at`` (the rest is the output topic's way to
   a reader: the producer's linger, the broker, the reader's fetch). From the workers' ``/metrics``
   over this phase: each stage's p50 and p99 record age (the wait before that hop, interpolated in
   the histogram's buckets), the time the workers spent paused in garbage collections, their CPU time
   per event, and the load that puts on them at the phase's rate (``latency_cpu_share``: CPU-seconds
   per second per worker; the rate is half the steady phase's, but an event costs more at a trickle than
   in a backlog, and near 1 the latency is a queue's).
6. Recovery: every worker is stopped (SIGTERM) and as many started again on the same book: the seconds
   until all are ready again (tables recovered, shards rebuilt), and the longest a new worker left
   ``/health`` unanswered once it had answered (its event loop held by one long computation).

``--worker-setting KEY=VALUE`` (repeatable) runs the workers with a setting of
:class:`streams.settings.Settings` other than its default (a deployment hands its workers none of the
caller's ``PATENTMATCH_*`` variables); the JSON then says which (``worker_settings``).

Prints one JSON object. Starts its own local broker unless ``PATENTMATCH_KAFKA_BOOTSTRAP`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from matcher.market import Market
from streams.harness import MetricSamples, health_until_ready, metric_total, scrape_metrics
from streams.kafka_io import ensure_topics, partition_counts_by
from streams.localkafka import LocalKafka
from streams.replay import publish_log, record_of
from streams.service import public_topics, source_topics
from streams.settings import Settings
from streams.supervision import Deployment, WorkerProcess

ENGINE_SECONDS = "patentmatch_engine_seconds_sum"
EMITTED = ("patentmatch_matches_total", "patentmatch_revocations_total")
RECORD_AGE = "patentmatch_record_age_seconds"
GC_PAUSES = "patentmatch_gc_pause_seconds"
CPU_SECONDS = "process_cpu_seconds_total"


async def passthrough(bootstrap: str, topics: list[str], total: int) -> float:
    """Events/s of consume → orjson.loads → produce (batched sends, not awaited one by one)."""
    sink = f"bench-passthrough-{int(time.time())}"
    await ensure_topics(bootstrap, {sink: 4})
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=sink)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        seen = 0
        started = None
        pending = []
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for tp, messages in batches.items():
                started = started or time.perf_counter()
                for m in messages:
                    document = orjson.loads(m.value)
                    pending.append(await producer.send(sink, orjson.dumps(document), key=m.key, partition=tp.partition))
                seen += len(messages)
            if len(pending) > 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return total / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()
        await producer.stop()


async def caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """Has the consumer group committed the end of every partition of ``topics``?"""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        counts = await partition_counts_by(admin, topics)
        tps = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        ends = await consumer.end_offsets(tps)
        return all(ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp]) for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def page_if_up(worker: WorkerProcess) -> MetricSamples:
    """The worker's ``/metrics``, or nothing while its web server is not up."""
    try:
        return await scrape_metrics(worker)
    except (OSError, RuntimeError):
        return {}


def growth(before: list[MetricSamples], after: list[MetricSamples], name: str, **labels: str) -> float:
    """How much ``name`` (with ``labels``) grew between two scrapes of each worker, summed over the workers."""
    pairs = zip(before, after, strict=True)
    return sum(metric_total(a, name, **labels) - metric_total(b, name, **labels) for b, a in pairs)


def backlog_split(
    before: list[MetricSamples], after: list[MetricSamples], *, size: int, seconds: float
) -> dict[str, Any]:
    """From the workers' ``/metrics`` before and after a backlog of ``size`` events that took ``seconds``:
    the engine's and garbage collection's shares of their wall time, their CPU time per input event,
    the engine's milliseconds per input event by trigger kind, and the match and revoke events per
    input event."""
    engine: dict[str, float] = {}
    for page_before, page_after in zip(before, after, strict=True):
        for (name, labels), value in page_after.items():
            if name == ENGINE_SECONDS:
                kind = dict(labels)["trigger"]
                engine[kind] = engine.get(kind, 0.0) + value - page_before.get((name, labels), 0.0)
    emitted = sum(growth(before, after, name) for name in EMITTED)
    paused = growth(before, after, GC_PAUSES + "_sum")
    cpu = growth(before, after, CPU_SECONDS)
    return {
        "engine_share": round(sum(engine.values()) / (len(after) * seconds), 3),
        "gc_share": round(paused / (len(after) * seconds), 3),
        "cpu_ms_per_event": round(1000 * cpu / size, 2),
        "engine_ms_per_event": {kind: round(1000 * value / size, 3) for kind, value in sorted(engine.items())},
        "match_events_per_event": round(emitted / size, 2),
    }


def bucket_quantile(buckets: dict[float, float], q: float) -> float:
    """The ``q`` quantile of a histogram's cumulative ``buckets`` (upper bound → count), interpolated
    linearly within its bucket as Prometheus's ``histogram_quantile`` does."""
    bounds = sorted(buckets)
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            inside = buckets[bound] - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, buckets[bound]
    return lower


def latency_split(
    before: list[MetricSamples], after: list[MetricSamples], *, events: int, rate: float
) -> dict[str, Any]:
    """What happened in the workers between two scrapes of each, while ``events`` were published at
    ``rate``: per stage, the p50 and p99 age of the records it took (from the record's timestamp on
    its topic, so each hop's own wait), the garbage collections' pauses (all generations, then the
    full ones alone), and the workers' CPU time per event, and per second at that rate."""
    ages: dict[str, dict[float, float]] = {}
    for page_before, page_after in zip(before, after, strict=True):
        for (name, labels), value in page_after.items():
            if name == RECORD_AGE + "_bucket":
                fields = dict(labels)
                stage = ages.setdefault(fields["stage"], {})
                bound = float(fields["le"])
                stage[bound] = stage.get(bound, 0.0) + value - page_before.get((name, labels), 0.0)

    def delta(name: str, **labels: str) -> float:
        return growth(before, after, name, **labels)

    return {
        "latency_record_age_ms": {
            stage: [round(1000 * bucket_quantile(buckets, q), 1) for q in (0.5, 0.99)]
            for stage, buckets in sorted(ages.items())
            if buckets[float("inf")] > 0
        },
        "latency_gc_pause_s": round(delta(GC_PAUSES + "_sum"), 2),
        "latency_full_collections": int(delta(GC_PAUSES + "_count", generation="2")),
        "latency_full_collection_s": round(delta(GC_PAUSES + "_sum", generation="2"), 2),
        "latency_cpu_ms_per_event": round(1000 * delta(CPU_SECONDS) / events, 2),
        "latency_cpu_share": round(delta(CPU_SECONDS) / events * rate / len(after), 3),
    }


def worker_env(pairs: list[str]) -> dict[str, str]:
    """``["producer_linger_s=0"]`` → ``{"PATENTMATCH_PRODUCER_LINGER_S": "0"}``, each checked against
    :class:`Settings` (a name it does not have, or a value it refuses, raises ``ValueError``)."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or key not in Settings.model_fields:
            raise ValueError(
                f"--worker-setting wants NAME=VALUE with a name of streams.settings.Settings, not {pair!r}"
            )
        Settings.model_validate({key: value})
        env[f"PATENTMATCH_{key.upper()}"] = value
    return env


async def drained(bootstrap: str, settings: Settings, workers: list[WorkerProcess], peak_lag: dict[str, float]) -> None:
    """Return once the workers' group has committed the end of every topic it reads, raising if a worker
    dies meanwhile; ``peak_lag`` keeps the most records they had yet to take from the shard log and from
    the answers, polled every second or so."""
    topics = settings.topics
    watched = source_topics(settings)
    while not await caught_up(bootstrap, settings.app_id, watched):
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"a worker died:\n{worker.death_report()}")
        pages = [await page_if_up(worker) for worker in workers]
        for stage, topic in (("shard_log", topics.shard_log), ("answers", topics.answers)):
            lag = sum(metric_total(page, "patentmatch_consumer_lag", topic=topic) for page in pages)
            peak_lag[stage] = max(peak_lag[stage], lag)
        await asyncio.sleep(1)


async def measure(
    bootstrap: str,
    size: int,
    steady_events: int,
    latency_events: int,
    workers: int,
    shards: int | None = None,
    worker_settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``shards``: the shard count, by default the worker count and at least the settings' default.
    ``worker_settings``: environment variables for the workers (:func:`worker_env`)."""
    market = Market(100)
    backlog = market.listings(size, expiring=0.0)
    later = market.lifecycle(latency_events)  # drawn before the steady phase's: the same as in earlier runs
    steady = market.lifecycle(steady_events)
    deployment = Deployment(
        bootstrap, shards=shards or max(workers, Deployment.shards), extra_env=worker_settings or {}
    )
    settings: Settings = deployment.settings
    topics = settings.topics
    await ensure_topics(bootstrap, public_topics(settings))
    began = time.perf_counter()
    await publish_log(bootstrap, settings, [record_of(d, topics) for d in backlog])
    print(f"backlog of {size} published in {time.perf_counter() - began:.1f}s", file=sys.stderr)

    inputs = [topics.offers, topics.demands, topics.financing]
    ceiling = await passthrough(bootstrap, inputs, size)
    print(f"passthrough {ceiling:.0f} events/s", file=sys.stderr)

    started_workers = [deployment.start_worker() for _ in range(workers)]
    try:
        started = time.perf_counter()
        peak_lag = {"shard_log": 0.0, "answers": 0.0}
        await asyncio.sleep(2)
        await drained(bootstrap, settings, started_workers, peak_lag)
        build_rate = size / (time.perf_counter() - started)
        print(f"book of {size} built at {build_rate:.0f} events/s", file=sys.stderr)
        after_build = [await scrape_metrics(worker) for worker in started_workers]
        started = time.perf_counter()
        await publish_log(bootstrap, settings, [record_of(d, topics) for d in steady])
        await drained(bootstrap, settings, started_workers, peak_lag)
        steady_s = time.perf_counter() - started
        service_rate = len(steady) / steady_s
        print(f"service {service_rate:.0f} events/s on the built book", file=sys.stderr)
        after_steady = [await scrape_metrics(worker) for worker in started_workers]
        split = backlog_split(after_build, after_steady, size=len(steady), seconds=steady_s)
        latencies, in_worker = await latency(deployment, later, rate=service_rate / 2)
        after_latency = [await scrape_metrics(worker) for worker in started_workers]
        during = latency_split(after_steady, after_latency, events=len(later), rate=service_rate / 2)
        ready_s, silence_s = await recovery(deployment, started_workers)
    finally:
        deployment.stop_all()
    return {
        "size": size,
        "workers": workers,
        "shards": settings.shards,
        **({"worker_settings": worker_settings} if worker_settings else {}),
        "book_build_events_per_s": round(build_rate, 1),
        "steady_events": len(steady),
        "service_events_per_s": round(service_rate, 1),
        "passthrough_events_per_s": round(ceiling, 1),
        "ratio": round(service_rate / ceiling, 4),
        **split,
        "backlog_peak_lag": {stage: int(lag) for stage, lag in peak_lag.items()},
        "latency_rate_events_per_s": round(service_rate / 2, 1),
        "latency_matches": len(latencies),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_p99_ms": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "latency_until_emitted_p50_ms": round(float(np.percentile(in_worker, 50)), 1) if in_worker else None,
        "latency_until_emitted_p99_ms": round(float(np.percentile(in_worker, 99)), 1) if in_worker else None,
        **during,
        "recovery_ready_s": round(ready_s, 1),
        "recovery_longest_health_silence_s": round(silence_s, 2),
    }


async def recovery(deployment: Deployment, workers: list[WorkerProcess]) -> tuple[float, float]:
    """Stop ``workers`` and start as many again: (seconds until every new one is ready, the longest
    time one of them left ``/health`` unanswered after its first answer)."""
    for worker in workers:
        worker.stop()
    restarted = [deployment.start_worker() for _ in workers]
    watched = await asyncio.gather(*(health_until_ready(w, timeout_s=1800) for w in restarted))
    return max(ready_s for ready_s, _ in watched), max(silence for _, silence in watched)


async def latency(
    deployment: Deployment, documents: list[dict[str, Any]], *, rate: float
) -> tuple[list[float], list[float]]:
    """Publish ``documents`` at ``rate`` and time each match from its trigger's publication: until it
    was read back, and until the worker emitted it (milliseconds)."""
    topics = deployment.topics
    sent_at: dict[str, float] = {}
    consumer = AIOKafkaConsumer(topics.matches, bootstrap_servers=deployment.bootstrap, auto_offset_reset="latest")
    await consumer.start()
    await asyncio.sleep(1)

    def stamped() -> Any:
        for document in documents:
            sent_at[str(document["event_id"])] = time.time()
            yield record_of(document, topics)

    publisher = asyncio.create_task(publish_log(deployment.bootstrap, deployment.settings, stamped(), rate_per_s=rate))
    out: list[float] = []
    in_worker: list[float] = []
    quiet_since = time.monotonic()
    try:
        while not publisher.done() or time.monotonic() - quiet_since < 5:
            batches = await consumer.getmany(timeout_ms=500)
            received = time.time()
            for messages in batches.values():
                for m in messages:
                    event = orjson.loads(m.value)
                    published = sent_at.get(event["trigger_event_id"])
                    if event["type"] == "match" and published is not None:
                        out.append((received - published) * 1000)
                        emitted = datetime.fromisoformat(event["emitted_at"]).timestamp()
                        in_worker.append((emitted - published) * 1000)
                quiet_since = time.monotonic()
        await publisher
    finally:
        await consumer.stop()
    return out, in_worker


def broker_bootstrap(stack: contextlib.ExitStack) -> str:
    """The configured ``PATENTMATCH_KAFKA_BOOTSTRAP``, or a local broker started for ``stack``'s life."""
    settings = Settings()
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    return stack.enter_context(LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir)).bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument(
        "--steady-events",
        type=int,
        default=20_000,
        help="lifecycle events (before their updates and withdrawals) timed as a backlog on the built book",
    )
    parser.add_argument("--latency-events", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the app (one per core)")
    parser.add_argument(
        "--shards", type=int, help="partitions of the shard log (default: the worker count, and at least 2)"
    )
    parser.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of streams.settings.Settings for the workers (repeatable), e.g. producer_linger_s=0",
    )
    args = parser.parse_args()
    if args.shards is not None and args.shards < 1:
        parser.error("--shards must be at least 1")
    try:
        env = worker_env(args.worker_setting)
    except ValueError as error:
        parser.error(str(error))
    with contextlib.ExitStack() as stack:
        result = asyncio.run(
            measure(
                broker_bootstrap(stack),
                args.size,
                args.steady_events,
                args.latency_events,
                args.workers,
                args.shards,
                env,
            )
        )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
