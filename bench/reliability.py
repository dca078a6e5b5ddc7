"""Reliability under faults, long forms (issue 6): each scenario on a real local broker, one JSON object.

    python -m bench.reliability [--listings 40000] [--kills 5] [--load-events 1000000] [--only load,...]

Every scenario folds what reached ``patent.matches`` and compares it with the brute-force oracle on the
final book: ``missing`` (open in the oracle, not in the fold), ``extra`` (the reverse), ``changed`` (open
in both, other versions or score) must be 0; ``duplicates`` (exact repeats) are counted.

- ``crash_loop``: SIGKILL the worker at ``kills`` random points of a replay and restart it each time.
- ``broker_restart``: stop the broker in the middle of a replay, check the worker reports not ready,
  start the broker again; the worker reconnects by itself.
- ``rebalance``: a second worker joins, applies events of its own, later leaves, while events flow.
- ``leave_in_recovery``: a second worker leaves as soon as it is assigned partitions, while the first
  still recovers its tables for the join.
- ``hostile_input``: 10% garbage mixed into the stream; every bad record dead-lettered exactly once.
- ``load``: a churning market (listings arrive, expire and are withdrawn, so the open book levels off)
  replayed as fast as the worker takes it; throughput, latency and the worker's RSS over time.
- ``security``: SASL/SCRAM with ACLs: the worker matches with its credentials, others are refused.

The short forms of the same scenarios run in ``make test`` (``tests/test_reliability.py``,
``tests/test_hostile_input.py``, ``tests/test_security.py``, ``tests/test_load.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from matcher.market import Market, to_event
from streams.audit import Audit
from streams.harness import (
    MatchStream,
    OracleAside,
    dead_letters,
    eventually,
    garbage,
    health_until_ready,
    market_events,
    metric_total,
    odd_but_valid,
    prepare,
    publish,
    readiness,
    scrape_metrics,
    settle_on_oracle,
    until_applied,
    until_assigned,
)
from streams.kafka_io import read_records
from streams.localkafka import LocalKafka
from streams.replay import publish_log, record_of
from streams.settings import PLAINTEXT, KafkaSecurity, Settings
from streams.supervision import Deployment, WorkerProcess
from streams.worker import collapse_repeated_client_errors

FAST_FAILOVER = {"PATENTMATCH_SESSION_TIMEOUT_S": "10"}


def figures(result: Audit, **more: Any) -> dict[str, Any]:
    return {
        "passed": result.equal and more.pop("ok", True),
        "missing": result.missing,
        "extra": result.extra,
        "changed": result.changed,
        "duplicates": result.duplicates,
        "match_events": result.events,
        **more,
    }


async def output_grows(dep: Deployment, by: int, timeout_s: float = 600) -> None:
    async with MatchStream(dep) as output:
        await output.grows(by, timeout_s=timeout_s, dep=dep)


async def crash_loop(bootstrap: str, *, listings: int, kills: int, shards: int, seed: int = 41) -> dict[str, Any]:
    documents = Market(seed).lifecycle(listings, expiring=0.1)
    with (
        Deployment(bootstrap, shards=shards, extra_env=FAST_FAILOVER) as dep,
        OracleAside(market_events(documents)) as oracle,
    ):
        await prepare(dep)
        worker = dep.start_worker()
        records = [record_of(d, dep.topics) for d in documents]
        replay = asyncio.create_task(publish(dep, records, rate_per_s=1000))
        rng = random.Random(seed)
        for _ in range(kills):
            await output_grows(dep, rng.randint(500, 5000))
            worker.stop(signal.SIGKILL)
            worker = dep.start_worker()
        await replay
        result = await settle_on_oracle(dep, oracle.result(), timeout_s=900)
        return figures(result, events=len(documents), kills=kills)


async def broker_restart(broker: LocalKafka, *, listings: int, shards: int) -> dict[str, Any]:
    documents = Market(47).lifecycle(listings, expiring=0.1)
    with Deployment(broker.bootstrap, shards=shards) as dep, OracleAside(market_events(documents)) as oracle:
        await prepare(dep)
        worker = dep.start_worker()
        replay = asyncio.create_task(publish(dep, [record_of(d, dep.topics) for d in documents], rate_per_s=500))
        await output_grows(dep, 500)
        down_at = time.monotonic()
        await asyncio.to_thread(broker.interrupt)

        async def not_ready() -> bool:
            return (await readiness(worker))[0] == 503

        await eventually(not_ready, timeout_s=30, dep=dep)
        noticed_s = time.monotonic() - down_at
        await asyncio.sleep(5)
        await asyncio.to_thread(broker.resume)
        outage_s = time.monotonic() - down_at

        async def ready() -> bool:
            return (await readiness(worker))[0] == 200

        await eventually(ready, timeout_s=120, dep=dep)
        ready_after_s = time.monotonic() - down_at - outage_s
        await replay
        result = await settle_on_oracle(dep, oracle.result(), timeout_s=900)
        return figures(
            result,
            events=len(documents),
            outage_s=round(outage_s, 1),
            not_ready_within_s=round(noticed_s, 1),
            ready_again_after_s=round(ready_after_s, 1),
            worker_restarts=0 if worker.process.poll() is None else 1,
            ok=worker.process.poll() is None,
        )


async def rebalance(bootstrap: str, *, listings: int, shards: int) -> dict[str, Any]:
    documents = Market(43).lifecycle(listings, expiring=0.1)
    with Deployment(bootstrap, shards=shards) as dep, OracleAside(market_events(documents)) as oracle:
        await prepare(dep)
        dep.start_worker()
        replay = asyncio.create_task(publish(dep, [record_of(d, dep.topics) for d in documents], rate_per_s=1000))
        await output_grows(dep, 1000)
        second = dep.start_worker()
        if shards == 1:  # it takes input partitions, and sends their events to the first worker's shard
            await until_assigned(second, timeout_s=600)
        else:
            await until_applied(second, 1, timeout_s=600, dep=dep)  # it took a share of the matching
        await output_grows(dep, 5000)
        second.stop(signal.SIGTERM)
        await replay
        result = await settle_on_oracle(dep, oracle.result(), timeout_s=900)
        return figures(result, events=len(documents))


async def leave_in_recovery(bootstrap: str, *, listings: int, shards: int) -> dict[str, Any]:
    """A second worker leaves as soon as it is assigned partitions, while the first still recovers its
    tables for the join: two thirds of the events are in the book by then, so that recovery is long."""
    documents = Market(53).lifecycle(listings, expiring=0.1)
    with Deployment(bootstrap, shards=shards) as dep, OracleAside(market_events(documents)) as oracle:
        await prepare(dep)
        first = dep.start_worker()
        records = [record_of(d, dep.topics) for d in documents]
        backlog = len(records) * 2 // 3
        await publish(dep, records[:backlog])
        await until_applied(first, backlog, timeout_s=1800, dep=dep)
        second = dep.start_worker()
        await until_assigned(second, timeout_s=600)
        second.stop(signal.SIGTERM)
        await publish(dep, records[backlog:], rate_per_s=1000)
        result = await settle_on_oracle(dep, oracle.result(), timeout_s=900)
        return figures(result, events=len(documents))


async def hostile_input(bootstrap: str, *, listings: int) -> dict[str, Any]:
    documents = Market(31).lifecycle(listings, expiring=0.1)
    documents += odd_but_valid(documents)
    with Deployment(bootstrap) as dep, OracleAside(market_events(documents)) as oracle:
        await prepare(dep)
        worker = dep.start_worker()
        rng = random.Random(5)
        t = dep.topics
        stream = [record_of(d, t) for d in documents]
        kinds = garbage(next(d for d in documents if "offer_id" in d), rng)
        bad: dict[str, str] = {}
        for i in range(len(stream) // 10):
            name, value, error_kind = kinds[i % len(kinds)]
            key = f"bad-{i}-{name}"
            bad[key] = error_kind
            stream.insert(
                rng.randint(0, len(stream)), (rng.choice([t.offers, t.demands, t.financing]), key.encode(), value)
            )
        await publish(dep, stream)
        result = await settle_on_oracle(dep, oracle.result(), timeout_s=900)

        async def all_dead_lettered() -> bool:
            return len(await dead_letters(dep)) >= len(bad)

        await eventually(all_dead_lettered, timeout_s=300, dep=dep)
        letters = await dead_letters(dep)
        per_key = Counter(letter["key"] for letter in letters)
        right_kind = all(bad.get(letter["key"]) == letter["error_kind"] for letter in letters)
        starts = worker.log_path.read_text(errors="replace").count("Worker]: Starting")
        once = set(per_key) == set(bad) and set(per_key.values()) == {1}
        return figures(
            result,
            events=len(stream),
            bad_records=len(bad),
            dead_lettered=len(letters),
            worker_restarts=starts - 1,
            ok=once and right_kind and starts == 1 and not worker.died,
        )


def rss_mb(worker: WorkerProcess) -> float:
    for line in Path(f"/proc/{worker.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def load(
    bootstrap: str, *, events: int, rate_per_s: float, max_backlog: int = 300, retention_days: float = 1.0
) -> dict[str, Any]:
    """A churning market replayed at ``rate_per_s``, or slower when the worker falls behind; the
    worker's RSS sampled every second.

    ``passed`` also needs the RSS to level off: over the second half of the replay it grows by less
    than 10% of what it was at half time. The open book is level there (listings expire and are
    withdrawn as fast as they come), so a leak is what would still grow with the events. The RSS
    also grows with a backlog, whatever the code (unthrottled at 120/s, above what the worker
    sustained: +11% over the second half). So the replay waits while the worker has more than
    ``max_backlog`` records to take (``patentmatch_consumer_lag`` over all its sources), and a slow
    machine cannot pass for a leak; ``throttled_s`` says how long it waited."""
    documents = Market(59).churn(events)
    retention = {"PATENTMATCH_MATCHING__TOMBSTONE_RETENTION_DAYS": str(retention_days)}
    final = (to_event(document) for document in documents)  # a million events: never all converted at once
    with Deployment(bootstrap, extra_env=retention) as dep, OracleAside(final) as oracle:
        await prepare(dep)
        worker = dep.start_worker()
        sent_at: dict[str, float] = {}
        samples: list[float] = []
        latencies: list[float] = []
        consumer = AIOKafkaConsumer(dep.topics.matches, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()

        def stamped() -> Iterator[tuple[str, bytes, bytes]]:
            for document in documents:
                sent_at[document["event_id"]] = time.monotonic()
                yield record_of(document, dep.topics)

        async def watch() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                now = time.monotonic()
                for messages in batches.values():
                    for m in messages:
                        sent = sent_at.get(orjson.loads(m.value)["trigger_event_id"])
                        if sent is not None:
                            latencies.append(now - sent)

        async def sample_rss() -> None:
            while True:
                samples.append(rss_mb(worker))
                await asyncio.sleep(1)

        throttled_s = 0.0

        async def backlog() -> float:
            return metric_total(await scrape_metrics(worker), "patentmatch_consumer_lag")

        async def until_caught_up() -> None:
            nonlocal throttled_s
            if await backlog() <= max_backlog:
                return
            began = time.monotonic()
            while await backlog() > max_backlog:
                await asyncio.sleep(0.25)
            throttled_s += time.monotonic() - began

        tasks = [asyncio.create_task(watch()), asyncio.create_task(sample_rss())]
        started = time.monotonic()
        try:
            await health_until_ready(worker, timeout_s=120)  # its lag is on its /metrics page
            await publish_log(dep.bootstrap, dep.settings, stamped(), rate_per_s=rate_per_s, throttle=until_caught_up)
            replayed = len(samples)
            result = await settle_on_oracle(dep, oracle.result(), timeout_s=3600)
        finally:
            for task in tasks:
                task.cancel()
            await consumer.stop()
        elapsed = time.monotonic() - started
        rss = np.array(samples[: max(replayed, 2)])
        half = rss[len(rss) // 2]
        lat = np.array(latencies or [0.0]) * 1000
        return figures(
            result,
            events=len(documents),
            seconds=round(elapsed, 1),
            events_per_s=round(len(documents) / elapsed, 1),
            offered_events_per_s=rate_per_s,
            throttled_s=round(throttled_s, 1),
            latency_p50_ms=round(float(np.percentile(lat, 50)), 1),
            latency_p99_ms=round(float(np.percentile(lat, 99)), 1),
            rss_mb_start=round(float(rss[0]), 1),
            rss_mb_half=round(float(half), 1),
            rss_mb_peak=round(float(rss.max()), 1),
            rss_mb_end=round(float(rss[-1]), 1),
            rss_mb_over_time=[round(float(r), 1) for r in rss[:: max(1, len(rss) // 20)]],
            ok=bool(rss[-1] < half * 1.10),
        )


async def security(*, listings: int) -> dict[str, Any]:
    settings = Settings()
    passwords = {name: secrets.token_urlsafe(18) for name in ("admin", "matcher", "stranger")}
    broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir, scram_users=passwords)
    await asyncio.to_thread(broker.start)
    user = KafkaSecurity(protocol="SASL_PLAINTEXT", username="matcher", password=passwords["matcher"])
    documents = Market(53).lifecycle(listings, expiring=0.1)
    try:
        with Deployment(broker.bootstrap, security=user) as dep, OracleAside(market_events(documents)) as oracle:
            broker.allow("User:matcher", operations=["All"], topic_prefix=dep.name, group_prefix=dep.name)
            await prepare(dep)
            worker = dep.start_worker()
            await publish(dep, [record_of(d, dep.topics) for d in documents])
            result = await settle_on_oracle(dep, oracle.result(), timeout_s=900)
            refused = {}
            others = {
                "no_credentials": PLAINTEXT,
                "wrong_password": KafkaSecurity(protocol="SASL_PLAINTEXT", username="matcher", password="wrong"),
                "no_acl": KafkaSecurity(protocol="SASL_PLAINTEXT", username="stranger", password=passwords["stranger"]),
            }
            for name, other in others.items():
                try:
                    await read_records(broker.bootstrap, dep.topics.matches, count=1, timeout_s=10, security=other)
                    refused[name] = False
                except (KafkaConnectionError, TopicAuthorizationFailedError):
                    refused[name] = True
            worker.stop()
            leaked = passwords["matcher"] in worker.log_path.read_text(errors="replace")
            return figures(result, events=len(documents), refused=refused, secret_in_logs=leaked,
                           ok=all(refused.values()) and not leaked)  # fmt: skip
    finally:
        broker.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings()
    broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir)
    await asyncio.to_thread(broker.start)
    scenarios: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "crash_loop": lambda: crash_loop(
            broker.bootstrap, listings=args.listings, kills=args.kills, shards=args.shards
        ),
        "broker_restart": lambda: broker_restart(broker, listings=args.listings, shards=args.shards),
        "rebalance": lambda: rebalance(broker.bootstrap, listings=args.listings, shards=args.shards),
        "leave_in_recovery": lambda: leave_in_recovery(broker.bootstrap, listings=args.listings, shards=args.shards),
        "hostile_input": lambda: hostile_input(broker.bootstrap, listings=args.listings),
        "load": lambda: load(broker.bootstrap, events=args.load_events, rate_per_s=args.load_rate),
        "security": lambda: security(listings=args.listings // 10),
    }
    out: dict[str, Any] = {}
    try:
        for name, scenario in scenarios.items():
            if args.only and name not in args.only:
                continue
            began = time.monotonic()
            try:
                out[name] = await scenario()
            except (AssertionError, TimeoutError) as exc:
                out[name] = {"passed": False, "error": str(exc)[:2000]}
            out[name]["seconds"] = out[name].get("seconds", round(time.monotonic() - began, 1))
            print(name, orjson.dumps(out[name]).decode(), file=sys.stderr, flush=True)
    finally:
        broker.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=40_000, help="new listings per fault scenario")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument(
        "--shards",
        type=int,
        default=2,
        help="shards of the crash loop, broker restart, rebalance and leave-in-recovery workers: 1 is direct",
    )
    parser.add_argument("--load-events", type=int, default=1_000_000)
    parser.add_argument(
        "--load-rate",
        type=float,
        default=120.0,
        help="events/s offered in the load scenario: below the ~150/s one worker sustains end to end on the "
        "level churning book (200k events offered at 200/s: 153.5/s, and a backlog), so the latencies "
        "measure the service, not a growing backlog",
    )
    parser.add_argument("--only", type=lambda s: set(s.split(",")), default=set())
    args = parser.parse_args()
    collapse_repeated_client_errors()  # its own clients retry through the broker restart too
    began = time.monotonic()
    result = asyncio.run(run(args))
    result["seconds_total"] = round(time.monotonic() - began, 1)
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
