"""The engine's storage: a removed row's postings are never read, whatever becomes of its slot; rows kept
in the order of their ids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matcher.store import IdOrder, Postings, Table


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


_IDS = st.text(alphabet="aAz0-_é中", min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    added=st.lists(_IDS, min_size=1, max_size=80, unique=True),
    removed=st.sets(st.integers(0, 79)),
    chosen=st.lists(st.sets(st.integers(0, 79)), min_size=1, max_size=6),
)
def test_the_order_of_ids_names_the_first_of_any_rows_as_min_would(
    added: list[str], removed: set[int], chosen: list[set[int]]
) -> None:
    """Rows come and go (their slots reused); the first id among any live rows, few or many (the two
    ways :meth:`IdOrder.first` reads it), and the rows before any id, are what reading every id says."""
    table = Table({"x": np.float64}, capacity=4)
    order = IdOrder(table)
    for entity_id in added:
        table.add(entity_id, {})
        order.add(entity_id)
    for entity_id in [added[i] for i in sorted(removed) if i < len(added)]:
        table.remove(entity_id)
        order.remove(entity_id)
    order.remove("never-added")
    order.few = 2
    live = sorted(table.slot_of.items())
    assert len(order) == len(live)
    for rows in chosen:
        picked = [live[i % len(live)] for i in rows] if live else []
        slots = np.array(sorted({slot for _, slot in picked}), dtype=np.int64)
        assert order.first(slots) == min((entity_id for entity_id, _ in picked), default=None)
    for probe in [*added[:5], "", "m", "\uffff"]:
        before = order.before(probe)
        assert {entity_id for entity_id, slot in live if before[slot]} == {i for i, _ in live if i < probe}


def test_the_order_refuses_rows_it_does_not_hold() -> None:
    table = Table({"x": np.float64})
    order = IdOrder(table)
    for entity_id in ("a", "b", "c"):
        table.add(entity_id, {})
    order.add("a")
    order.few = 0
    with pytest.raises(ValueError, match="none of these slots"):
        order.first(np.array([table.slot_of["b"], table.slot_of["c"]]))
