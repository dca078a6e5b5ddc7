"""The service's matching path without Kafka: where a worker's time, memory and collection pauses go.

    python -m bench.pipeline [--size 20000] [--shards 2] [--market listings|churn] [--answer-every 8]
                             [--gc python|thresholds|worker] [--matching KEY=VALUE]

One :class:`ShardStage` holding every shard and one :class:`Merger`, over plain dicts, apply a
generated log as a worker does: each event to every shard, then every ``answer-every`` events the
shards' answers are bundled, received by the merger and announced (with ``--shards 1``, handed to the
merger as they are, as a direct worker does: :meth:`Merger.receive_direct`). ``--gc`` sets the collector:
Python's defaults, the worker's thresholds alone (:data:`streams.gc_tuning.GC_THRESHOLDS`), or
everything the worker does (:func:`streams.gc_tuning.tune_gc`, which also freezes long-lived objects).
``--matching`` sets the matching as for ``bench.engine`` (:mod:`bench.matching_option`).

Prints one JSON object: events/s, milliseconds per event in each step, RSS growth per event, a batch's
milliseconds from its first event's apply to its announcement (p50, p99, and p99 per match event), and
for each generation of garbage collection (0, 1, 2: full) the count, total and longest pause.

``--market listings`` is the backlog of ``bench.e2e`` (``Market(100).listings``: a book that grows with
every event); ``churn`` is the market of ``bench.reliability``'s load scenario (``Market(59).churn``:
listings expire and are withdrawn, so the open book levels off at about 1,300 entries, ~700 of them
offers and ~450 buyer demands, from about 5,000 events on; each event moves many seekers' top K).
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from bench.engine import rss_bytes
from bench.matching_option import add_matching_option, matching_config, settings_entry
from matcher import MatchingConfig
from matcher.market import Market
from matcher.text import default_analyzer
from streams.gc_tuning import GC_THRESHOLDS, CollectionPauses, tune_gc
from streams.harness import shard_log
from streams.merging import Merger
from streams.sharding import ShardStage, bundle_answers, merge_partition, split_bundle

MERGE_PARTITIONS = 4


MARKETS: dict[str, Callable[[int], list[dict[str, Any]]]] = {
    "listings": lambda size: Market(100).listings(size, expiring=0.0),
    "churn": lambda size: Market(59).churn(size),
}


def run(
    size: int,
    answer_every: int,
    collector: str,
    market: str = "listings",
    config: MatchingConfig | None = None,
    shards: int = 2,
) -> dict[str, Any]:
    log = shard_log(MARKETS[market](size))
    config = config if config is not None else MatchingConfig()
    stage = ShardStage({}, shards=shards, config=config, analyzer=default_analyzer())
    merger = Merger({}, config=config, shards=shards, partitions=MERGE_PARTITIONS)
    for partition in range(MERGE_PARTITIONS):
        merger.load(partition, [])
    for shard in range(shards):
        stage.build(shard)
    if collector == "thresholds":
        gc.set_threshold(*GC_THRESHOLDS)
    elif collector == "worker":
        tune_gc()
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    collections = CollectionPauses(lambda generation, seconds: pauses[generation].append(seconds))
    gc.callbacks.append(collections)
    seconds: defaultdict[str, float] = defaultdict(float)
    answers = announced = 0
    batches: list[tuple[float, int]] = []
    """Each batch's seconds, from its first event's apply to its announcement, and its match events."""
    rss_before = rss_bytes()
    started = time.perf_counter()
    try:
        batch_began = time.perf_counter()
        for offset, (key, value) in enumerate(log):
            began = time.perf_counter()
            for shard in range(shards):
                stage.apply(shard, offset, key, value)
            seconds["apply"] += time.perf_counter() - began
            if (offset + 1) % answer_every and offset + 1 < len(log):
                continue
            for shard in range(shards):
                began = time.perf_counter()
                taken = stage.take_answers(shard)
                bundles = [] if shards == 1 else bundle_answers(taken, MERGE_PARTITIONS)
                answered = time.perf_counter()
                for partition, bundle in bundles:
                    for raw in split_bundle(bundle):
                        merger.receive(partition, raw)
                if shards == 1:
                    for answer in taken:
                        merger.receive_direct(merge_partition(answer.seeker, MERGE_PARTITIONS), answer)
                seconds["answer"] += answered - began
                seconds["merge_receive"] += time.perf_counter() - answered
                answers += len(taken)
            began = time.perf_counter()
            events = merger.take_events(emitted_at=datetime.now(UTC))
            seconds["merge_announce"] += time.perf_counter() - began
            announced += len(events)
            batches.append((time.perf_counter() - batch_began, len(events)))
            batch_began = time.perf_counter()
        elapsed = time.perf_counter() - started
    finally:
        gc.callbacks.remove(collections)
    return {
        "size": size,
        "market": market,
        "shards": shards,
        "answer_every": answer_every,
        "gc": collector,
        **settings_entry(config),
        "events_per_s": round(size / elapsed, 1),
        "ms_per_event": {step: round(1000 * s / size, 3) for step, s in seconds.items()},
        "answers_per_event": round(answers / size, 2),
        "match_events_per_event": round(announced / size, 2),
        "rss_kb_per_event": round((rss_bytes() - rss_before) / 1024 / size, 1),
        **batch_times(batches),
        "collections": [len(pauses[generation]) for generation in range(3)],
        "collection_s": [round(sum(pauses[generation]), 2) for generation in range(3)],
        "longest_collection_ms": [round(1000 * max(pauses[generation], default=0.0), 1) for generation in range(3)],
    }


def batch_times(batches: list[tuple[float, int]]) -> dict[str, float]:
    """p50 and p99 of the batches' milliseconds, and the p99 weighted by match events: a heavy batch
    (an offer entering a hundred seekers' top K) counts once per match event that waited for it, as it
    does in ``bench.e2e``'s latency, which is taken per match event."""
    milliseconds = np.array([1000 * s for s, _ in batches])
    weights = np.array([n for _, n in batches])
    return {
        "batch_p50_ms": round(float(np.percentile(milliseconds, 50)), 2),
        "batch_p99_ms": round(float(np.percentile(milliseconds, 99)), 2),
        "per_match_event_batch_p99_ms": round(float(np.percentile(np.repeat(milliseconds, weights), 99)), 2)
        if weights.sum()
        else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=2, help="1: the direct path of a one-shard worker")
    parser.add_argument("--market", choices=sorted(MARKETS), default="listings")
    parser.add_argument("--answer-every", type=int, default=8, help="events between answers (a batch)")
    parser.add_argument("--gc", choices=["python", "thresholds", "worker"], default="worker")
    add_matching_option(parser)
    args = parser.parse_args()
    config = matching_config(args.matching, parser)
    print(json.dumps(run(args.size, args.answer_every, args.gc, args.market, config, args.shards)))


if __name__ == "__main__":
    main()
