"""Load and memory, short form (issue 6, scenario 6): a churning market — listings arrive, expire and
are withdrawn, so the open book stops growing — replayed at a steady rate. The fold equals the oracle,
and the worker's RSS levels off: withdrawn and expired entities free their memory.

The long form (a million events) is ``python -m bench.reliability --only load``.
"""

from __future__ import annotations

from bench.reliability import load


async def test_a_churning_replay_matches_the_oracle_and_memory_levels_off(kafka_bootstrap: str) -> None:
    # A backlog grows the RSS too (measured unthrottled at 120/s: +11% over the second half, against
    # +4% at 90/s), which is queueing, not the leak this looks for. So the replay waits whenever the
    # worker is more than 300 records behind: on a machine slower than this one (one CI run took 84/s
    # here, and its RSS grew +12%) the test runs longer instead of measuring the backlog.
    figures = await load(kafka_bootstrap, events=10_000, rate_per_s=90, max_backlog=300)
    print(figures)
    assert figures["missing"] == figures["extra"] == figures["changed"] == 0
    assert figures["rss_mb_end"] < figures["rss_mb_half"] * 1.10, figures["rss_mb_over_time"]
    assert figures["events_per_s"] > 0 and figures["latency_p99_ms"] > 0
