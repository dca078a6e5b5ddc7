"""``bench.e2e`` times the service on a phase between two scrapes of each worker's ``/metrics``: what it
reports of that phase must be the counters' growth over it, not what the workers did before (building
the book)."""

from __future__ import annotations

from bench.e2e import CPU_SECONDS, EMITTED, ENGINE_SECONDS, GC_PAUSES, backlog_split
from streams.harness import MetricSamples


def page(offer_s: float, demand_s: float, emitted: float, paused_s: float, cpu_s: float) -> MetricSamples:
    return {
        (ENGINE_SECONDS, frozenset({("trigger", "offer")})): offer_s,
        (ENGINE_SECONDS, frozenset({("trigger", "buyer_demand")})): demand_s,
        (EMITTED[0], frozenset({("kind", "transaction")})): emitted,
        (EMITTED[1], frozenset({("reason", "superseded")})): emitted / 2,
        (GC_PAUSES + "_sum", frozenset({("generation", "0")})): paused_s,
        (CPU_SECONDS, frozenset()): cpu_s,
    }


def test_the_split_of_a_phase_counts_only_what_grew_during_it() -> None:
    # Two workers; before the phase each had built the book (large counters), then 1,000 events took 10 s.
    before = [page(300.0, 100.0, 50_000, 20.0, 900.0), page(280.0, 90.0, 40_000, 10.0, 800.0)]
    after = [page(303.0, 101.0, 58_000, 20.4, 905.0), page(282.0, 92.0, 48_000, 10.6, 806.0)]
    split = backlog_split(before, after, size=1000, seconds=10.0)
    assert split == {
        "engine_share": round((3 + 1 + 2 + 2) / (2 * 10.0), 3),
        "gc_share": round((0.4 + 0.6) / (2 * 10.0), 3),
        "cpu_ms_per_event": 11.0,
        "engine_ms_per_event": {"buyer_demand": 3.0, "offer": 5.0},
        "match_events_per_event": 24.0,
    }
