"""The worker's garbage collector: rare, short pauses over a heap of millions of long-lived objects.

A worker's state (the book, the indexes, the emitted matches) is millions of small objects that live
for as long as their listing. CPython's collector walks them at every full collection, and an event in
flight waits for it: ~1 µs an object, 0.3–0.5 s a pause at a 30k book. Objects that survive a
generation-1 collection are frozen at once (``gc.freeze``), so no collection walks them again; a frozen
object is still freed by reference counting, only a cycle among frozen objects outlives its use, and a
periodic rescan (:data:`RESCAN_EVERY`) collects those.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["GC_THRESHOLDS", "RESCAN_EVERY", "CollectionPauses", "FrozenSurvivors", "tune_gc"]

GC_THRESHOLDS = (700, 10, 100)
"""Python's defaults are (700, 10, 10). A full collection walks every object not yet frozen: in bench.e2e
at 20k, before anything was frozen, 28% of the worker's CPU went to them. The young generations, where
the cycles asyncio and aiokafka make die, are collected as often as with the defaults. A larger first
threshold measured fewer collections still but an RSS that kept rising in tests/test_load.py's
churning market."""

RESCAN_EVERY = 5000
"""Generation-1 collections between two rescans of the whole heap (see :class:`FrozenSurvivors`): as
often as the full collections that rescanned it before (one in 50, one per 100 generation-1 ones)."""


class FrozenSurvivors:
    """A gc callback: what survives a generation-1 collection is frozen, so that no later collection
    walks it again.

    ``gc.freeze`` also resets the generations' counts, so full collections stop coming of themselves;
    those that came before paused the worker for 0.3–0.5 s each at a 30k book (``python -m bench.pipeline
    --size 30000``), reaching the latency's p99. Every :data:`RESCAN_EVERY`-th generation-1 collection
    unfreezes instead and freezing stops until the next full collection, which then walks the whole heap
    and collects any cycle among objects that were frozen. A full collection run for another reason
    (``gc.collect()``) freezes what survived it too."""

    def __init__(self, rescan_every: int = RESCAN_EVERY) -> None:
        self.rescan_every = rescan_every
        self.young_collections = 0
        """Generation-1 collections since the last full one, counted up to the rescan."""

    @property
    def rescanning(self) -> bool:
        """From the rescan's unfreezing to the full collection after it, while nothing is frozen."""
        return self.young_collections >= self.rescan_every

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase != "stop":
            return
        if info["generation"] == 2:
            self.young_collections = 0
            gc.freeze()
        elif info["generation"] == 1 and not self.rescanning:
            self.young_collections += 1
            if self.rescanning:
                gc.unfreeze()
            else:
                gc.freeze()


class CollectionPauses:
    """A gc callback: hands each collection's generation and duration (seconds) to ``observe``."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self.observe = observe
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.observe(info["generation"], time.perf_counter() - self._started)


def tune_gc(observe_pause: Callable[[int, float], None] | None = None) -> None:
    """The worker's collector: :data:`GC_THRESHOLDS`, long-lived objects frozen (:class:`FrozenSurvivors`)
    and, given ``observe_pause``, every collection timed (:class:`CollectionPauses`)."""
    gc.set_threshold(*GC_THRESHOLDS)
    if not any(isinstance(callback, FrozenSurvivors) for callback in gc.callbacks):
        gc.callbacks.append(FrozenSurvivors())
    if observe_pause is not None and not any(isinstance(c, CollectionPauses) for c in gc.callbacks):
        gc.callbacks.append(CollectionPauses(observe_pause))
