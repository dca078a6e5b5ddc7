"""Engine benchmark: per-trigger latency on a book of N open entries, against a naive full scan.

    python -m bench.engine --size 100000

Builds the book from the seeded market generator (loaded without matching), then applies fresh
offers, buyer demands, financing requests and lenders/investors (``financier_*``) one at a time
through the full engine path (conversion of the event, indexes, scoring, views, explanations) and
prints one JSON object, with the match and revoke notices each kind of trigger sent
(``offer_notices_p50``, ``offer_notices_p99``, …): a trigger's latency grows with them; and each
kind's p99 in CPU time (``offer_cpu_p99_ms``, …), which the waits of a shared machine do not reach.
The baseline is the obvious matcher: score the demand against every offer in the book with the
scalar definition.

``--book-file PATH`` saves the built book (views included) and times later runs on it, so that two
commits can be compared on one 1M book without building its views twice. ``--matching KEY=VALUE``
times a setting other than the defaults (:mod:`bench.matching_option`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import pickle
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np

from bench.matching_option import add_matching_option, matching_config, settings_entry
from matcher import Engine, MatchingConfig
from matcher.engine import entity_from_event
from matcher.entities import Demand, Offer
from matcher.index import adopt_interners, process_interners
from matcher.market import Market, to_event
from matcher.scoring import combine, offer_fit
from schemas import InputEvent


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples_s) * 1000
    return round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3)


def naive_scan(engine: Engine, demand: Demand, config: MatchingConfig) -> list[tuple[float, str]]:
    offers: list[Offer] = [o for shard in engine.shards for o in shard.offers.entities.values()]
    found = []
    for offer in offers:
        fit = offer_fit(demand, offer, config)
        if fit is not None and fit.gap_cny is None:
            score = combine(fit.parts, config.weights)
            if score >= config.min_score:
                found.append((-score, offer.id))
    return sorted(found)[: config.top_k]


def bytes_per_offer(count: int, seed: int) -> float:
    """RSS growth per single-patent offer held by the engine (record, columns, postings)."""
    market = Market(seed + 1)
    engine = Engine()
    documents = []
    while len(documents) < count:
        document = market.offer()
        if len(document["patents"]) == 1:
            documents.append(document)
    gc.collect()
    before = rss_bytes()
    for document in documents:
        event = to_event(document)
        engine.load(entity_from_event(event, engine.analyzer, engine.config))
    documents.clear()
    gc.collect()
    return (rss_bytes() - before) / count


TRIGGER_KINDS = ("offer", "demand", "financing", "financier")


def build(
    size: int, seed: int, views: bool, config: MatchingConfig | None = None
) -> tuple[Engine, Market, dict[str, Any]]:
    """The book of ``size`` open entries (and every seeker's views, if asked), the market positioned
    after it, and what building it cost."""
    market = Market(seed)
    engine = Engine(config)
    convert_s = load_s = 0.0
    for document in market.listings(size):
        event = to_event(document)
        began = time.perf_counter()
        entity = entity_from_event(event, engine.analyzer, engine.config)
        converted = time.perf_counter()
        engine.load(entity)
        load_s += time.perf_counter() - converted
        convert_s += converted - began
    sizes = engine.sizes()
    began = time.perf_counter()
    seekers = engine.rebuild_views() if views else 0
    views_s = time.perf_counter() - began
    costs = {"sizes": sizes, "convert_s": convert_s, "load_s": load_s, "views_s": views_s, "seekers": seekers}
    return engine, market, costs


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading or writing millions of objects would otherwise run the cyclic collector over and over."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def saved_build(
    path: Path, size: int, seed: int, views: bool, config: MatchingConfig | None = None
) -> tuple[Engine, Market, dict[str, Any]]:
    """:func:`build`, saved to ``path`` the first time and read back after. A 1M book with its views
    takes over an hour to build; saved, two commits can be timed on the same book in minutes, as long
    as they store the engine alike (a change of its classes' fields makes the file unreadable). A book
    built with other settings than the defaults is saved with them, and read back only with them."""
    key: dict[str, Any] = {"size": size, "seed": seed, "views": views, **settings_entry(config)}
    if path.exists():
        with path.open("rb") as saved, _collector_paused():
            stored_key, interners, built = pickle.load(saved)
        gc.collect()  # once, now: the objects read in would otherwise be traversed during the first triggers
        if stored_key != key:
            raise SystemExit(f"{path} holds a book built with {stored_key}, not {key}")
        adopt_interners(interners)
        return cast(tuple[Engine, Market, dict[str, Any]], built)
    built = build(size, seed, views, config)
    with path.open("wb") as saved, _collector_paused():
        pickle.dump((key, process_interners(), built), saved, protocol=pickle.HIGHEST_PROTOCOL)
    return built


def run(
    size: int,
    triggers: int,
    scans: int,
    seed: int,
    views: bool,
    kinds: tuple[str, ...] = TRIGGER_KINDS,
    book_file: Path | None = None,
    config: MatchingConfig | None = None,
) -> dict[str, Any]:
    if book_file:
        engine, market, costs = saved_build(book_file, size, seed, views, config)
    else:
        engine, market, costs = build(size, seed, views, config)
    config = engine.config
    sizes, seekers = costs["sizes"], costs["seekers"]
    convert_s, load_s, views_s = costs["convert_s"], costs["load_s"], costs["views_s"]

    makers = {
        "offer": market.offer,
        "demand": market.buyer,
        "financing": market.request,
        "financier": market.financier,
    }
    makers = {kind: make for kind, make in makers.items() if kind in kinds}
    latencies: dict[str, list[float]] = {kind: [] for kind in [*makers, "withdraw"]}
    cpu: dict[str, list[float]] = {kind: [] for kind in latencies}
    fan_out: dict[str, list[int]] = {kind: [] for kind in latencies}

    def timed(kind: str, event: InputEvent) -> None:
        began, began_cpu = time.perf_counter(), time.thread_time()
        fan_out[kind].append(len(engine.apply(event).notices))
        latencies[kind].append(time.perf_counter() - began)
        cpu[kind].append(time.thread_time() - began_cpu)

    for _ in range(triggers):
        for kind, make in makers.items():
            timed(kind, to_event(make()))

    for offer_id in list(engine.shards[0].offers.entities)[:triggers]:
        document = market.offer(offer_id=offer_id, version=engine.shards[0].book.version_of("offer", offer_id) + 1)
        document["status"] = "withdrawn"
        timed("withdraw", to_event(document))

    scan_s, indexed_s = [], []
    for _ in range(scans):
        event = to_event(market.buyer())
        demand = entity_from_event(event, engine.analyzer, config)
        assert isinstance(demand, Demand)
        began = time.perf_counter()
        naive_scan(engine, demand, config)
        scan_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        engine.apply(event)
        indexed_s.append(time.perf_counter() - began)

    result: dict[str, Any] = {"size": size, "book": sizes, "views_built": views, "trigger_kinds": list(makers)}
    result |= settings_entry(config)
    for kind in makers:
        result[f"{kind}_p50_ms"], result[f"{kind}_p99_ms"] = percentiles(latencies[kind])
    result["insert_us"] = round(load_s / size * 1e6, 1)
    result["convert_us"] = round(convert_s / size * 1e6, 1)
    result["withdraw_p50_ms"], result["withdraw_p99_ms"] = percentiles(latencies["withdraw"])
    # The same triggers' CPU time (this thread's): on a shared machine the wall-clock tail also holds
    # the time the process waited for a core, which this leaves out.
    for kind, samples in cpu.items():
        result[f"{kind}_cpu_p99_ms"] = percentiles(samples)[1]
    result["index_build_s"] = round(load_s, 2)
    result["views_build_s"] = round(views_s, 2)
    result["seekers"] = seekers
    result["open_matches"] = len(engine.views)
    result["scan_demand_p50_ms"], result["scan_demand_p99_ms"] = percentiles(scan_s)
    result["scan_sample_indexed_p50_ms"], result["scan_sample_indexed_p99_ms"] = percentiles(indexed_s)
    result["speedup_vs_scan"] = round(statistics.median(scan_s) / statistics.median(indexed_s), 1)
    result["notices_from_triggers"] = sum(sum(fan_out[kind]) for kind in makers)
    # The latency of a trigger grows with the match events it sends (each explained): its tail is these.
    for kind, counts in fan_out.items():
        result[f"{kind}_notices_p50"], result[f"{kind}_notices_p99"] = (
            round(float(np.percentile(counts, q))) for q in (50, 99)
        )
    # In a fresh process: this one's heap is already grown by the book, so it would hide the growth.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result["bytes_per_offer"] = round(pool.apply(bytes_per_offer, (min(size, 50_000), seed)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000, help="open entries in the book")
    parser.add_argument("--triggers", type=int, default=300, help="triggers of each kind")
    parser.add_argument("--scans", type=int, default=10, help="demands timed against the naive full scan")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-views",
        action="store_true",
        help="skip computing every seeker's open matches before timing (hours at 1M); offer triggers then "
        "run against empty views and admit every eligible candidate, so their figures are an upper bound",
    )
    parser.add_argument(
        "--kinds",
        default=",".join(TRIGGER_KINDS),
        help="trigger kinds to time, comma-separated; demand and financing triggers rank their own "
        "counterparts and do not depend on the other seekers' views, so with --no-views they are measured as they are",
    )
    parser.add_argument(
        "--book-file",
        type=Path,
        help="save the built book (views included) here, or time on the one saved there by an earlier run "
        "with the same --size, --seed and views; the build figures are the first run's",
    )
    add_matching_option(parser)
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(","))
    if unknown := set(kinds) - set(TRIGGER_KINDS):
        parser.error(f"unknown trigger kinds: {sorted(unknown)}")
    config = matching_config(args.matching, parser)
    result = run(args.size, args.triggers, args.scans, args.seed, not args.no_views, kinds, args.book_file, config)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
