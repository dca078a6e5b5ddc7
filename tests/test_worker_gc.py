"""The worker's collector: what survives a generation-1 collection is frozen, so full collections stop
walking the book, and a cycle among frozen objects is still collected by the periodic rescan."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from streams.gc_tuning import CollectionPauses, FrozenSurvivors
from streams.metrics import GcPauses


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def survivors() -> Iterator[FrozenSurvivors]:
    callback = FrozenSurvivors(rescan_every=3)
    gc.collect()
    gc.callbacks.append(callback)
    try:
        yield callback
    finally:
        gc.callbacks.remove(callback)
        gc.unfreeze()
        gc.collect()


def test_what_survives_a_generation_1_collection_is_frozen(survivors: FrozenSurvivors) -> None:
    before = gc.get_freeze_count()
    kept = [[i] for i in range(1000)]
    gc.collect(1)
    assert survivors.young_collections == 1
    assert gc.get_freeze_count() >= before + len(kept)
    assert gc.get_count()[2] == 0, "freezing resets the count that would trigger a full collection"
    gc.collect(0)
    assert gc.get_freeze_count() >= before + len(kept), "young collections leave frozen objects alone"


def test_a_cycle_among_frozen_objects_is_collected_at_the_rescan(survivors: FrozenSurvivors) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.collect(1)  # 1st generation-1 collection: the cycle survives it, and is frozen
    del a, b
    gc.collect(1)  # 2nd: frozen, so not examined
    assert gone() is not None
    gc.collect(1)  # 3rd: unfreezes everything, and nothing is frozen until the next full collection
    assert survivors.rescanning and gc.get_freeze_count() == 0
    gc.collect(1)
    assert gone() is not None, "the cycle now sits in the oldest generation, which only a full collection walks"
    gc.collect()
    assert gone() is None
    assert not survivors.rescanning and gc.get_freeze_count() > 0, "freezing resumes after the full collection"


def test_each_collection_is_timed_by_generation() -> None:
    pauses: list[tuple[int, float]] = []
    timer = CollectionPauses(lambda generation, seconds: pauses.append((generation, seconds)))
    gc.callbacks.append(timer)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks.remove(timer)
    assert {generation for generation, _ in pauses} >= {0, 2}
    assert all(0 <= seconds < 10 for _, seconds in pauses)


def test_pauses_are_exported_as_a_prometheus_histogram_by_generation() -> None:
    pauses = GcPauses(buckets=(0.001, 0.01))
    for generation, seconds in [(0, 0.0005), (0, 0.001), (0, 0.005), (2, 0.5)]:
        pauses.observe(generation, seconds)
    registry = CollectorRegistry()
    registry.register(pauses)

    def sample(suffix: str, generation: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"patentmatch_gc_pause_seconds{suffix}", {"generation": generation, **labels})

    assert sample("_bucket", "0", le="0.001") == 2, "a bucket counts the pauses up to its bound, inclusive"
    assert sample("_bucket", "0", le="0.01") == sample("_bucket", "0", le="+Inf") == sample("_count", "0") == 3
    assert sample("_sum", "0") == pytest.approx(0.0065)
    assert sample("_bucket", "2", le="0.01") == 0 and sample("_count", "2") == 1
    assert sample("_count", "1") == 0
