"""The worker's Prometheus metrics: one registry per app, served at ``/metrics`` on the web port.

Every worker of a scaled-out app exposes its own figures; Prometheus sums them. Names follow the
Prometheus conventions (``_total`` counters, ``_seconds`` histograms, base units). The README lists
each metric with what it tells an operator; a test checks the dashboard uses only these names.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
from collections import Counter as CounterOf
from collections.abc import Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from streams.merging import Announcement

__all__ = ["GC_PAUSES", "GcPauses", "ServiceMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
ENGINE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
CANDIDATE_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
BOOK_SIDES = ("offers", "buyer_demands", "financier_demands", "financing_requests")
REBUILD_BUCKETS = (0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
GC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class GcPauses:
    """This process's garbage collections and how long each paused it, by generation, as a Prometheus
    histogram. It is fed from a gc callback, which runs wherever an allocation triggered a collection:
    there it must not take a lock the interrupted code may hold, so it keeps plain counts instead of a
    ``prometheus_client`` metric (whose every update takes its value's lock)."""

    name = "patentmatch_gc_pause_seconds"

    def __init__(self, buckets: Sequence[float] = GC_BUCKETS) -> None:
        self.bounds = list(buckets)
        self.counts = [[0] * (len(self.bounds) + 1) for _ in range(3)]
        """Per generation, collections per bucket (the last: above every bound), not cumulative."""
        self.sums = [0.0, 0.0, 0.0]

    def observe(self, generation: int, seconds: float) -> None:
        self.counts[generation][bisect.bisect_left(self.bounds, seconds)] += 1
        self.sums[generation] += seconds

    def collect(self) -> Iterator[Metric]:
        help_text = "Garbage collections of this process and how long each paused it, by generation (2: full)"
        family = HistogramMetricFamily(self.name, help_text, labels=["generation"])
        bounds = [*map(floatToGoString, self.bounds), "+Inf"]
        for generation, counts in enumerate(self.counts):
            cumulative = list(itertools.accumulate(counts))
            family.add_metric([str(generation)], [(b, float(n)) for b, n in zip(bounds, cumulative, strict=True)],
                              self.sums[generation])  # fmt: skip
        yield family


GC_PAUSES = GcPauses()
"""The process's own, not an app's: every app's registry exports it (:class:`ServiceMetrics`), and
:func:`streams.gc_tuning.tune_gc` feeds it (``tune_gc(GC_PAUSES.observe)``)."""


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "patentmatch_events",
            "Input events by source topic and outcome (accepted, stale, duplicate, dead_lettered)",
            ["topic", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "patentmatch_dead_letters",
            "Records sent to the dead-letter topic, by error kind",
            ["error_kind"],
            registry=r,
        )
        self.matches = Counter("patentmatch_matches", "Match events emitted, by kind", ["kind"], registry=r)
        self.revocations = Counter(
            "patentmatch_revocations", "Revoke events emitted, by kind and reason", ["kind", "reason"], registry=r
        )
        self.book = Gauge(
            "patentmatch_book_entries",
            "Open entries in each shard this worker holds, by side (offers: the shard's own)",
            ["shard", "side"],
            registry=r,
        )
        self.candidates = Histogram(
            "patentmatch_trigger_candidates",
            "Candidates one trigger built in one shard",
            ["trigger"],
            buckets=CANDIDATE_BUCKETS,
            registry=r,
        )
        self.engine_seconds = Histogram(
            "patentmatch_engine_seconds",
            "Engine time for one trigger in one shard",
            ["trigger"],
            buckets=ENGINE_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "patentmatch_event_to_match_seconds",
            "From the trigger's occurred_at to the match or revoke event being emitted",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.record_age = Histogram(
            "patentmatch_record_age_seconds",
            "From a record's timestamp on its topic to a stage taking it (validate: input topics, shard:"
            " the shard log, merge: the answers): where delay builds up between the stages",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "patentmatch_consumer_lag",
            "Records not yet processed, per source partition this worker consumes (set when scraped)",
            ["topic", "partition"],
            registry=r,
        )
        self.rebuild_seconds = Histogram(
            "patentmatch_rebuild_seconds",
            "Rebuilding state after recovery or rebalance: a shard's engine, a merger partition's emitted state",
            ["stage"],
            buckets=REBUILD_BUCKETS,
            registry=r,
        )
        self.read_back = Counter(
            "patentmatch_records_read_back",
            "Records read again from the log, by topic and why: 'skipped' (faust handed a later record"
            " first), 'unapplied' (a shard's offset committed past what its book holds, replayed at a build)",
            ["topic", "why"],
            registry=r,
        )
        self.let_go = Counter(
            "patentmatch_shard_log_records_let_go",
            "Shard-log records acknowledged unapplied because another rebalance began while they waited for"
            " their shard to be built (the next build of the shard replays them)",
            ["shard"],
            registry=r,
        )
        self.ready = Gauge("patentmatch_ready", "1 when the worker is recovered, assigned and consuming", registry=r)
        self.broker_up = Gauge("patentmatch_broker_up", "1 when the brokers answered the last probe", registry=r)
        r.register(GC_PAUSES)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, ...

    def emitted(self, announced: Iterable[Announcement]) -> None:
        """Count a batch of match and revoke events, and observe each one's latency from its trigger.

        The counters move once per label set and batch, and each label set is looked up once per
        batch: ``labels`` takes a lock and checks its values, and cost more than the ``inc`` it was
        made for when it was called for every event (a batch holds hundreds)."""
        counts: CounterOf[tuple[str, str, str | None]] = CounterOf()
        latency = {"match": self.latency.labels("match"), "revoke": self.latency.labels("revoke")}
        for out in announced:
            counts[(out.type, out.kind, out.reason)] += 1
            latency[out.type].observe((out.emitted_at - out.occurred_at).total_seconds())
        for (type_, kind, reason), count in counts.items():
            if type_ == "match":
                self.matches.labels(kind).inc(count)
            else:
                self.revocations.labels(kind, reason or "superseded").inc(count)

    def dead_lettered(self, topic: str, error_kind: str) -> None:
        self.events.labels(topic, "dead_lettered").inc()
        self.dead_letters.labels(error_kind).inc()

    def set_book(self, shard: int, sizes: Mapping[str, int]) -> None:
        for side, size in sizes.items():
            self.book.labels(str(shard), side).set(size)

    def forget_shard(self, shard: int) -> None:
        """A shard moved to another worker: stop reporting its book here."""
        for side in BOOK_SIDES:
            with contextlib.suppress(KeyError):  # never reported here
                self.book.remove(str(shard), side)

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        self.lag.clear()
        for (topic, partition), lag in lags.items():
            self.lag.labels(topic, str(partition)).set(lag)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def names(self) -> set[str]:
        """Every sample name this registry can export (``_bucket``, ``_count``, ``_sum``, ``_total`` …)."""
        names = set()
        for family in self.registry.collect():
            names.add(family.name)
            names |= {sample.name for sample in family.samples}
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
        return names
