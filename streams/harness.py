"""Driving a deployment from outside, for the integration tests and bench.reliability: publishing
events to it, reading what it wrote, waiting (with a deadline) for the open matches to equal the
oracle's or for a restarted worker to be ready, and the hostile records a worker must dead-letter."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from matcher.candidates import Candidate
from matcher.market import to_event
from matcher.oracle import final_log, oracle_matches
from schemas import DeadLetter, InputEvent, encode, entity_id
from streams.audit import Audit, OutputFold
from streams.intake import Source, route
from streams.kafka_io import client_options, ensure_topics
from streams.replay import publish_log, read_topic, record_of
from streams.service import public_topics
from streams.settings import Settings
from streams.supervision import Deployment, WorkerProcess


def http_get(worker: WorkerProcess, path: str) -> tuple[int, str]:
    """GET one of the worker's pages: (status, body). Raises ``URLError`` while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


MetricSamples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""A worker's ``/metrics`` page: (sample name, its labels) → value."""


async def scrape_metrics(worker: WorkerProcess) -> MetricSamples:
    status, text = await asyncio.to_thread(http_get, worker, "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics of pid {worker.process.pid} answered {status}")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric_total(samples: MetricSamples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def readiness(worker: WorkerProcess) -> tuple[int, str]:
    """``/ready``'s status and body; (0, why) while nothing listens."""
    try:
        return await asyncio.to_thread(http_get, worker, "/ready")
    except (ConnectionError, urllib.error.URLError) as exc:
        return 0, str(exc)


async def applied_events(worker: WorkerProcess) -> float:
    """Input events the worker applied in shards it holds (``patentmatch_events_total``): above 0 once
    it has taken a share of the work; 0 while it serves no ``/metrics`` yet."""
    try:
        return metric_total(await scrape_metrics(worker), "patentmatch_events_total")
    except (OSError, RuntimeError):
        return 0.0


async def until_applied(worker: WorkerProcess, at_least: float, *, timeout_s: float, dep: Deployment) -> None:
    """Wait until the worker has applied ``at_least`` input events (:func:`applied_events`)."""

    async def enough() -> bool:
        return await applied_events(worker) >= at_least

    await eventually(enough, timeout_s=timeout_s, dep=dep)


async def until_assigned(worker: WorkerProcess, *, timeout_s: float) -> None:
    """Return as soon as ``/ready`` no longer says the worker has no partitions: it joined the group,
    and it (and every other member) now recovers its tables for the new assignment. Polled every 50 ms:
    :func:`eventually`'s pace would often miss that recovery."""
    deadline = time.monotonic() + timeout_s
    while (status := await readiness(worker))[0] == 0 or "no source partitions assigned" in status[1]:
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker died:\n{worker.death_report()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"not assigned within {timeout_s}s: {status}")
        await asyncio.sleep(0.05)


async def health_until_ready(worker: WorkerProcess, *, timeout_s: float) -> tuple[float, float]:
    """Poll a worker just started: (seconds until ``/ready`` says ready, the longest time ``/health``
    went unanswered after its first answer: the event loop held by one long computation). Raises if
    the worker dies or is not ready within ``timeout_s``."""
    began = time.monotonic()
    answered: float | None = None
    silence = 0.0
    while time.monotonic() - began < timeout_s:
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker died:\n{worker.death_report()}")
        try:
            status, _ = await asyncio.to_thread(http_get, worker, "/health")
        except OSError:  # not listening yet, or no answer within http_get's timeout
            status = 0
        if status == 200:
            now = time.monotonic()
            if answered is not None:
                silence = max(silence, now - answered)
            answered = now
            if (await readiness(worker))[0] == 200:
                return now - began, silence
        await asyncio.sleep(0.2)
    raise TimeoutError(f"not ready within {timeout_s}s:\n{worker.wait_report()}")


def records_of(dep: Deployment, events: Iterable[InputEvent]) -> list[tuple[str, bytes, bytes]]:
    t = dep.topics
    out = []
    for event in events:
        topic = {"PatentOffer": t.offers, "BuyerDemand": t.demands, "FinancingRequest": t.financing}[
            type(event).__name__
        ]
        out.append((topic, entity_id(event).encode(), encode(event)))
    return out


async def prepare(dep: Deployment) -> None:
    await ensure_topics(dep.bootstrap, public_topics(dep.settings), security=dep.security)


async def publish(dep: Deployment, records: list[tuple[str, bytes, bytes]], rate_per_s: float | None = None) -> int:
    return await publish_log(dep.bootstrap, dep.settings, records, rate_per_s=rate_per_s)


async def market_records(dep: Deployment, documents: list[dict[str, Any]]) -> list[tuple[str, bytes, bytes]]:
    return [record_of(d, dep.topics) for d in documents]


def shard_log(documents: Iterable[dict[str, Any]], settings: Settings | None = None) -> list[tuple[bytes, bytes]]:
    """The shard-log records (key, value) the intake makes of these documents, in order."""
    settings = settings or Settings()
    out = []
    for offset, (topic, key, value) in enumerate(record_of(d, settings.topics) for d in documents):
        routed = route(value, Source(topic, 0, offset, key), settings, received_at=datetime.now(UTC))
        if isinstance(routed, DeadLetter):
            raise ValueError(f"not a valid event: {routed.error_kind} at offset {offset}")
        out.append((routed.key, routed.value))
    return out


def market_events(documents: list[dict[str, Any]]) -> list[InputEvent]:
    return [to_event(d) for d in documents]


async def matches(dep: Deployment) -> list[dict[str, Any]]:
    return await read_topic(dep.bootstrap, dep.topics.matches, security=dep.security)


async def dead_letters(dep: Deployment) -> list[dict[str, Any]]:
    return await read_topic(dep.bootstrap, dep.topics.deadletter, security=dep.security)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float, dep: Deployment) -> None:
    """Poll ``check`` until it holds; fail with the workers' log tails after ``timeout_s``, or at once
    when a worker dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        if any(w.died for w in dep.workers):
            tails = "\n---\n".join(w.death_report() for w in dep.workers if w.died)
            raise AssertionError(f"a worker died; its log:\n{tails}")
        await asyncio.sleep(0.5)
    tails = "\n---\n".join(w.wait_report() for w in dep.workers)
    progress = "\n".join([await progress_of(w) for w in dep.workers if not w.stopped])
    raise AssertionError(f"not reached within {timeout_s}s; live workers:\n{progress}\nworker logs:\n{tails}")


_PROGRESS_METRICS = ("patentmatch_events_total", "patentmatch_matches_total", "patentmatch_consumer_lag",
                     "patentmatch_ready", "patentmatch_broker_up")  # fmt: skip


async def progress_of(worker: WorkerProcess) -> str:
    """The worker's counters of work done, lag and readiness, from ``/metrics``: what a log tail cannot
    tell, whether a worker that stopped logging is stuck or still busy."""
    try:
        _, page = await asyncio.to_thread(http_get, worker, "/metrics")
    except (ConnectionError, urllib.error.URLError) as exc:
        return f"pid {worker.process.pid}: no /metrics ({exc})"
    lines = [line for line in page.splitlines() if line.startswith(_PROGRESS_METRICS)]
    return f"pid {worker.process.pid}: " + "; ".join(lines)


class MatchStream:
    """``patent.matches`` followed as it grows, each record read and parsed once.

    Waiting by re-reading the whole topic at every poll costs time quadratic in the output: on a long
    run (bench.reliability) the reader took a core from the worker it was waiting for. The events are
    folded as they are read (:class:`OutputFold`), not kept: a 1M-event load wrote 16.6M of them."""

    def __init__(self, dep: Deployment) -> None:
        self.fold = OutputFold()
        self._consumer = AIOKafkaConsumer(
            dep.topics.matches,
            bootstrap_servers=dep.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **client_options(dep.security),
        )

    async def __aenter__(self) -> MatchStream:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> int:
        """Read everything written since the last poll; returns how many match events that was."""
        arrived = 0
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=20_000)
            new = [m.value for messages in batches.values() for m in messages if m.value is not None]
            if not new:
                return arrived
            self.fold.add_all(orjson.loads(value) for value in new)
            arrived += len(new)

    async def reaches(self, count: int, *, timeout_s: float, dep: Deployment) -> None:
        """Wait until ``count`` match events have been written in all."""

        async def reached() -> bool:
            await self.poll()
            return self.fold.events >= count

        await eventually(reached, timeout_s=timeout_s, dep=dep)

    async def grows(
        self, by: int, *, timeout_s: float, dep: Deployment, unless_quiet_for_s: float | None = None
    ) -> None:
        """Wait until ``by`` more match events than read so far have been written; with
        ``unless_quiet_for_s``, stop waiting too once nothing new has come for that long (the workers
        have said all a log makes them say: on a busy machine the merger folds a backlog into fewer
        events, so a log's output is not a fixed count)."""
        await self.poll()
        target = self.fold.events + by
        seen, since = self.fold.events, time.monotonic()

        async def grown_or_quiet() -> bool:
            nonlocal seen, since
            await self.poll()
            if self.fold.events != seen:
                seen, since = self.fold.events, time.monotonic()
            quiet = unless_quiet_for_s is not None and time.monotonic() - since >= unless_quiet_for_s
            return self.fold.events >= target or quiet

        await eventually(grown_or_quiet, timeout_s=timeout_s, dep=dep)


def _lower_priority() -> None:
    os.nice(10)


class OracleAside:
    """The oracle on ``events``, computed by other processes while the scenario runs.

    The brute force is quadratic in the book: on a 40k-listing market it takes about 20 minutes of one
    core, which a long scenario would otherwise spend after its replay. Each process computes a share
    of the seekers, at a lower priority, so the worker it overlaps with keeps the CPU it needs. Leaving
    the ``with`` block stops processes still computing (a scenario that failed early)."""

    def __init__(self, events: Iterable[InputEvent], processes: int = 2) -> None:
        final = final_log(events)  # what each process is sent: the final book's events, not the whole log
        self._pool = multiprocessing.get_context("spawn").Pool(processes, initializer=_lower_priority)
        self._shares = [
            self._pool.apply_async(oracle_matches, (final,), {"share": (i, processes)}) for i in range(processes)
        ]

    def __enter__(self) -> OracleAside:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.terminate()
        self._pool.join()

    async def result(self) -> dict[str, Candidate]:
        shares = await asyncio.gather(*(asyncio.to_thread(share.get) for share in self._shares))
        return {match_id: c for share in shares for match_id, c in share.items()}


async def settle_on_oracle(
    dep: Deployment, expected: list[InputEvent] | Awaitable[dict[str, Candidate]], *, timeout_s: float = 120.0
) -> Audit:
    """Wait until the fold of the output equals the oracle (computed here from the events, or awaited
    from :meth:`OracleAside.result`); return the audit. The fold is audited whenever the output has been
    quiet since the last look (while it still grows, an audit would only be redone)."""
    oracle = oracle_matches(expected) if isinstance(expected, list) else await expected
    result: list[Audit] = []
    async with MatchStream(dep) as output:

        async def equal() -> bool:
            if await output.poll() and result:
                return False
            result[:] = [output.fold.against(oracle)]
            return result[0].equal

        try:
            await eventually(equal, timeout_s=timeout_s, dep=dep)
        except AssertionError as exc:
            raise AssertionError(f"{result[0] if result else 'no audit'}\n{exc}") from None
    return result[0]


def garbage(template: dict[str, Any], rng: random.Random) -> list[tuple[str, bytes, str]]:
    """One record of each kind of garbage: (name, value, the error kind it must be dead-lettered with)."""
    raw = orjson.dumps(template)
    return [
        ("random bytes", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000))), "decode"),
        ("truncated JSON", raw[: rng.randint(1, len(raw) - 1)], "decode"),
        ("deeply nested JSON", b"[" * 5000 + b"]" * 5000, "decode"),
        ("5 MB record", orjson.dumps({**template, "padding": "x" * (5 << 20)}), "too_large"),
        ("wrong types", orjson.dumps({**template, "patents": "many", "keywords": 7}), "schema"),
        ("huge string", orjson.dumps({**template, "keywords": ["专利" * 100_000]}), "schema"),
        ("invalid UTF-8", raw[:30] + b"\xc3\x28\xff" + raw[33:], "decode"),
        ("unknown schema version", orjson.dumps({**template, "schema_version": 99}), "schema"),
        ("unknown field", orjson.dumps({**template, "colour": "red"}), "schema"),
        ("empty record", b"", "decode"),
    ]


def odd_but_valid(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An event for an entity never seen, a stale version, and a repeated event id."""
    offers = [d for d in documents if "offer_id" in d]
    unknown = {**offers[0], "offer_id": "offer-never-seen", "event_id": "evt-never-seen", "status": "withdrawn"}
    stale = {**offers[1], "version": 1, "event_id": "evt-stale-copy", "keywords": ["stale"]}
    repeated = dict(offers[2])
    return [unknown, stale, repeated]
