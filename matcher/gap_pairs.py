"""Remembered gap pairs: per buyer demand, the offers priced over its budget that a lender or investor
could bridge into its local top K.

A new financier is tested against every remembered pair. There can be hundreds of thousands in a
large book, and most fail on the financier's budget, on the buyer's floor, or because a financier
ranked above the newcomer already bridges them. So the pairs live in numpy columns, one row per pair,
and those three tests run over all rows at once (:meth:`GapPairs.contestable`); only the rows left
are examined one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from matcher.store import FloatArray, IntArray, Table

__all__ = ["GAP_PAIR_CAP", "BridgeHint", "GapPairs"]

GAP_PAIR_CAP = 256
"""Pairs remembered per demand; past it the demand is marked overflowing, and a financier that might
bridge it has the demand recomputed instead."""

_COLUMNS: dict[str, Any] = {
    "buyer_slot": np.int64,
    "offer_version": np.int64,
    "gap": np.float64,
    "score": np.float64,
    # The financier that bridged the pair when last computed, a hint: it may have left since. It is
    # identified by its slot and that slot's generation in the financier table, which change when it
    # leaves or is updated; ``hint_near`` is how near it is to the buyer (2 region, 1 country, 0).
    "hint_slot": np.int64,
    "hint_gen": np.int64,
    "hint_near": np.int64,
    "hint_id": object,
}


class BridgeHint(NamedTuple):
    """The financier that bridges a pair: its id, where it sits in the financier table, its nearness."""

    financier_id: str
    slot: int
    generation: int
    near: int


class GapPair(NamedTuple):
    """One remembered pair, as read back for the per-pair checks."""

    row: int
    demand_id: str
    offer_id: str
    offer_version: int
    gap: float
    score: float


class GapPairs:
    """Gap pairs by demand and offer, one row each, with the overflow marks of demands past the cap."""

    def __init__(self) -> None:
        self._rows = Table(_COLUMNS)
        self._of_demand: dict[str, dict[str, str]] = {}
        self.overflowing: set[str] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def note(self, demand_id: str, buyer_slot: int, offer_id: str, offer_version: int, gap: float, score: float,
             hint: BridgeHint | None) -> None:  # fmt: skip
        """Remember (or refresh) a pair, unless the demand overflows now or already did."""
        if demand_id in self.overflowing:
            return
        keys = self._of_demand.setdefault(demand_id, {})
        key = keys.get(offer_id)
        if key is None and len(keys) >= GAP_PAIR_CAP:
            self.drop(demand_id)
            self.overflowing.add(demand_id)
            return
        values = {"buyer_slot": buyer_slot, "offer_version": offer_version, "gap": gap, "score": score}
        if key is not None:
            row = self._rows.slot_of[key]
            for name, value in values.items():
                self._rows.cols[name][row] = value
        else:
            key = keys[offer_id] = f"{demand_id} {offer_id}"
            row = self._rows.add(key, values)
        self.set_hint(row, hint)

    def set_hint(self, row: int, hint: BridgeHint | None) -> None:
        cols = self._rows.cols
        if hint is None:
            cols["hint_slot"][row], cols["hint_id"][row] = -1, None
            return
        cols["hint_id"][row], cols["hint_slot"][row] = hint.financier_id, hint.slot
        cols["hint_gen"][row], cols["hint_near"][row] = hint.generation, hint.near

    def drop(self, demand_id: str) -> None:
        """Forget a demand's pairs and its overflow mark (it left, or is being recomputed)."""
        for key in self._of_demand.pop(demand_id, {}).values():
            self._rows.remove(key)
        self.overflowing.discard(demand_id)

    def contestable(
        self,
        low: float,
        high: float,
        floors: FloatArray,
        newcomer_id: str,
        nearness: Callable[[IntArray], IntArray],
        financiers: Table,
    ) -> Iterator[GapPair]:
        """The pairs a new financier might now bridge best, by demand id then offer id: gap within
        [``low``, ``high``], score at least the buyer's ``floors[buyer_slot]``, and no still-open hinted
        financier ranked above the newcomer (``nearness`` maps buyer slots to the newcomer's nearness
        to them). The financier table tells whether a hinted financier is still there, same version."""
        cols, n = self._rows.cols, self._rows.size
        gaps = cols["gap"][:n]
        rows = np.flatnonzero(self._rows.alive[:n] & (gaps >= low) & (gaps <= high))
        buyer_slots = cols["buyer_slot"][rows]
        keep = cols["score"][rows] >= floors[buyer_slots]
        rows, buyer_slots = rows[keep], buyer_slots[keep]
        own = nearness(buyer_slots)
        hinted = cols["hint_slot"][rows]
        at = np.maximum(hinted, 0)
        still_open = (hinted >= 0) & financiers.alive[at] & (financiers.gen[at] == cols["hint_gen"][rows])
        hint_near = np.where(still_open, cols["hint_near"][rows], -1)
        above = hint_near > own
        tied = np.flatnonzero(hint_near == own)
        above[tied] = cols["hint_id"][rows[tied]] < newcomer_id  # equally near: the smaller id ranks above
        rows = rows[~above]
        found = []
        for row in rows.tolist():
            demand_id, _, offer_id = str(self._rows.ids[row]).partition(" ")
            found.append((demand_id, offer_id, row))
        found.sort()
        for demand_id, offer_id, row in found:
            yield GapPair(row, demand_id, offer_id, int(cols["offer_version"][row]), float(cols["gap"][row]),
                          float(cols["score"][row]))  # fmt: skip
