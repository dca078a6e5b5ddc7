"""The engine's posting lists: a removed row's postings are never read, whatever becomes of its slot."""

from __future__ import annotations

import numpy as np

from matcher.store import Postings, Table


def _read(postings: Postings, key: str) -> list[tuple[int, float]]:
    slots, weights = postings.lookup(key)
    return sorted(zip(slots.tolist(), weights.tolist(), strict=True))


def test_a_removed_rows_postings_are_not_read_even_once_its_slot_is_reused() -> None:
    table = Table({"x": np.float64})
    postings = Postings(table)
    first = table.add("first", {})
    postings.add(first, ["heat", "pump"], [1.0, 2.0])
    second = table.add("second", {})
    postings.add(second, ["heat"], [3.0])

    table.remove("first")
    postings.note_removed(["heat", "pump"])
    third = table.add("third", {})
    postings.add(third, ["heat"], [5.0])

    assert third == first  # the slot is reused, under a new generation
    assert _read(postings, "heat") == sorted([(second, 3.0), (third, 5.0)])
    assert _read(postings, "pump") == []

    table.remove("second")  # a removal after the list was compacted is seen as well
    postings.note_removed(["heat"])
    assert _read(postings, "heat") == [(third, 5.0)]


def test_a_look_up_returns_copies_so_the_list_can_grow_while_they_are_held() -> None:
    table = Table({"x": np.float64})
    postings = Postings(table)
    postings.add(table.add("a", {}), ["heat"], [1.0])
    held = postings.lookup("heat")
    postings.add(table.add("b", {}), ["heat"], [2.0])  # a buffer still exported would refuse to grow
    assert held[0].tolist() == [0]
    assert _read(postings, "heat") == [(0, 1.0), (1, 2.0)]
