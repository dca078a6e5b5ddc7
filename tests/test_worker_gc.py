"""The worker's collector: long-lived objects are frozen after each full collection, and a cycle among
them is still collected by the periodic rescan."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.worker import FrozenSurvivors


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


def test_what_survives_a_full_collection_is_frozen(survivors: FrozenSurvivors) -> None:
    before = gc.get_freeze_count()
    kept = [[i] for i in range(1000)]
    gc.collect()
    assert survivors.full_collections == 1
    assert gc.get_freeze_count() >= before + len(kept)
    gc.collect(0)
    assert gc.get_freeze_count() >= before + len(kept), "young collections leave frozen objects alone"


def test_a_cycle_among_frozen_objects_is_collected_at_the_rescan(survivors: FrozenSurvivors) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.collect()  # 1st full collection: the cycle survives it, and is frozen
    del a, b
    gc.collect()  # 2nd: frozen, so not examined
    assert gone() is not None
    gc.collect()  # 3rd: unfreezes everything
    gc.collect()  # 4th: examines the whole heap
    assert gone() is None
