"""Compact storage for the vectorised engine: numpy columns by slot, and posting lists.

A slot is a row shared by every column of a table. Slots are reused after removal; each carries a
generation number, moved on when the slot is filled and when it is emptied, and a posting records the
generation it was written for. So a posting left behind by a removed row is recognised as dead by one
comparison, without being searched for and erased. The first look-up of a list after a removal drops
its dead postings; the look-ups that follow, until the next removal, read the list without comparing
generations (a list is read far more often than a row carrying its key is removed).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["IdOrder", "Interner", "Postings", "Table"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Interner:
    """Small integer ids for repeated strings (party ids, regions, IPC classes)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def id(self, value: str) -> int:
        found = self._ids.get(value)
        if found is None:
            found = self._ids[value] = len(self._ids)
        return found

    def get(self, value: str) -> int:
        return self._ids.get(value, -1)


class Table:
    """Rows of fixed-type columns, addressed by slot, with the entity id of each slot."""

    def __init__(self, columns: Mapping[str, Any], capacity: int = 1024) -> None:
        self._dtypes = dict(columns)
        self.capacity = capacity
        self.cols: dict[str, np.ndarray[Any, Any]] = {
            name: np.zeros(capacity, dtype=dtype) for name, dtype in self._dtypes.items()
        }
        self.alive = np.zeros(capacity, dtype=bool)
        self.gen = np.zeros(capacity, dtype=np.int32)
        self.ids: list[str | None] = [None] * capacity
        self.slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self.slot_of)

    def add(self, entity_id: str, values: Mapping[str, Any]) -> int:
        if entity_id in self.slot_of:
            raise KeyError(f"{entity_id} is already stored")
        slot = self._free.pop() if self._free else self._grow_one()
        for name, column in self.cols.items():
            column[slot] = values.get(name, 0)
        self.alive[slot] = True
        self.gen[slot] += 1
        self.ids[slot] = entity_id
        self.slot_of[entity_id] = slot
        return slot

    def remove(self, entity_id: str) -> int | None:
        slot = self.slot_of.pop(entity_id, None)
        if slot is not None:
            self.alive[slot] = False
            self.gen[slot] += 1  # the slot's postings are dead from now on, whether or not it is reused
            self.ids[slot] = None
            self._free.append(slot)
        return slot

    def _grow_one(self) -> int:
        if self.size == self.capacity:
            self.capacity *= 2
            for name, column in self.cols.items():
                grown = np.zeros(self.capacity, dtype=column.dtype)
                grown[: self.size] = column[: self.size]
                self.cols[name] = grown
            self.alive = np.concatenate([self.alive, np.zeros(self.capacity - self.size, dtype=bool)])
            self.gen = np.concatenate([self.gen, np.zeros(self.capacity - self.size, dtype=np.int32)])
            self.ids.extend([None] * (self.capacity - self.size))
        self.size += 1
        return self.size - 1

    def live_slots(self) -> IntArray:
        return np.flatnonzero(self.alive[: self.size]).astype(np.int64)


class IdOrder:
    """The slots of a table's rows in the order of their ids, kept as rows come and go.

    Ties are broken by the smallest id, and among thousands of rows reading every id to find it is
    the slow part. At ``bench.engine``'s 1M book (40k financiers), choosing a bridge's financier (the
    nearest to the buyer, then the smallest id) took 7.0 ms, and telling which financiers' ids come
    before a newcomer's 39 ms, most of it turning slots into strings; in this order, each is one
    vectorised pass over the slots (1.6 ms with the rest of the choice, read tier by tier, and 0.06 ms)."""

    few = 16
    """Up to this many rows, the smallest id is read directly (a pass costs more)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._ids: list[str] = []
        self._slots: IntArray = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, entity_id: str) -> None:
        """Place a row just added to the table."""
        at = bisect.bisect_left(self._ids, entity_id)
        self._ids.insert(at, entity_id)
        self._slots = np.insert(self._slots, at, self.table.slot_of[entity_id])

    def remove(self, entity_id: str) -> None:
        at = bisect.bisect_left(self._ids, entity_id)
        if at < len(self._ids) and self._ids[at] == entity_id:
            del self._ids[at]
            self._slots = np.delete(self._slots, at)

    def first(self, slots: IntArray) -> str | None:
        """The first id among the rows in ``slots``; None if there are none."""
        if len(slots) <= self.few:
            ids = self.table.ids
            return min((found for slot in slots.tolist() if (found := ids[slot]) is not None), default=None)
        chosen = np.zeros(self.table.capacity, dtype=bool)
        chosen[slots] = True
        at = int(chosen[self._slots].argmax())
        if not chosen[self._slots[at]]:
            raise ValueError("none of these slots is in the order")
        return self._ids[at]

    def before(self, entity_id: str) -> npt.NDArray[np.bool_]:
        """Per slot of the table, whether its row's id comes before ``entity_id``."""
        below = np.zeros(self.table.capacity, dtype=bool)
        below[self._slots[: bisect.bisect_left(self._ids, entity_id)]] = True
        return below


class _PostingList:
    __slots__ = ("dead", "gens", "slots", "weights")

    def __init__(self) -> None:
        self.slots = array("i")
        self.gens = array("i")
        self.weights = array("d")
        self.dead = 0


class Postings:
    """key → the slots (with a weight each) of a :class:`Table` that carry the key."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._lists: dict[str, _PostingList] = {}

    def add(self, slot: int, keys: Iterable[str], weights: Iterable[float] | None = None) -> None:
        generation = int(self._table.gen[slot])
        weight_iter = iter(weights) if weights is not None else None
        for key in keys:
            plist = self._lists.get(key)
            if plist is None:
                plist = self._lists[key] = _PostingList()
            plist.slots.append(slot)
            plist.gens.append(generation)
            plist.weights.append(next(weight_iter) if weight_iter is not None else 1.0)

    def note_removed(self, keys: Iterable[str]) -> None:
        """Count the postings of a removed row as dead (the list's next look-up drops them)."""
        for key in keys:
            plist = self._lists.get(key)
            if plist is not None:
                plist.dead += 1

    def lookup(self, key: str) -> tuple[IntArray, FloatArray]:
        """Live slots carrying ``key`` and their weights."""
        plist = self._lists.get(key)
        if plist is None:
            return _EMPTY_INT, _EMPTY_FLOAT
        if plist.dead:
            plist = self._compact(key, plist)
            if plist is None:
                return _EMPTY_INT, _EMPTY_FLOAT
        slots = np.frombuffer(plist.slots, dtype=np.int32)
        return slots.astype(np.int64), np.frombuffer(plist.weights, dtype=np.float64).copy()

    def _compact(self, key: str, plist: _PostingList) -> _PostingList | None:
        """Drop the postings of removed rows: those whose generation is no longer their slot's."""
        slots = np.frombuffer(plist.slots, dtype=np.int32)
        gens = np.frombuffer(plist.gens, dtype=np.int32)
        live = self._table.gen[slots] == gens
        if not live.any():
            del self._lists[key]
            return None
        kept = _PostingList()
        kept.slots = array("i", slots[live].tobytes())
        kept.gens = array("i", gens[live].tobytes())
        kept.weights = array("d", np.frombuffer(plist.weights, dtype=np.float64)[live].tobytes())
        self._lists[key] = kept
        return kept

    def __len__(self) -> int:
        return len(self._lists)


_EMPTY_INT: IntArray = np.zeros(0, dtype=np.int64)
_EMPTY_FLOAT: FloatArray = np.zeros(0, dtype=np.float64)
