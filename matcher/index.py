"""Candidate generation without scanning the book: IPC prefix and term postings over numpy columns.

Two shapes of index, one per direction of a match:

- :class:`DocIndex` holds *documents* — offers, and financing requests with their collateral. Given a
  query (a demand's terms and codes) it returns the documents on topic with it, with the raw text
  relevance and the field score of each.
- :class:`QueryIndex` holds *stored queries* — buyer demands, lenders and investors. Given a new
  document it returns the queries it is on topic for (the percolator direction).

Both compute exactly what :mod:`matcher.scoring` defines, for many rows at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher.ipc import LEVEL_SCORES, levels
from matcher.scoring import TOPICAL_FIELD, TOPICAL_TEXT
from matcher.store import FloatArray, IdOrder, IntArray, Interner, Postings, Table
from matcher.text import query_norm

__all__ = ["TERRITORY_WORDS", "DocIndex", "QueryIndex", "adopt_interners", "process_interners", "territory_words"]

_SECTIONS = "ABCDEFGHY"
_CLASS_SLOTS = 4
TERRITORY_WORDS = 4
_territories = Interner()
_classes = Interner()


def process_interners() -> tuple[Interner, Interner]:
    """The process-wide interners of territory codes and IPC classes. Index columns hold their ids, so
    an index carried to another process (a benchmark's saved book) must bring them along."""
    return _territories, _classes


def adopt_interners(interners: tuple[Interner, Interner]) -> None:
    """Use the interners an index was built with (:func:`process_interners`), in a process that has not
    built an index of its own yet."""
    global _territories, _classes
    _territories, _classes = interners


def territory_words(codes: Iterable[str]) -> list[int]:
    """A 256-bit set of territory codes as four uint64 words (every ISO country fits)."""
    words = [0] * TERRITORY_WORDS
    for code in codes:
        bit = _territories.id(code)
        words[bit // 64] |= 1 << (bit % 64)
    return words


def _section_mask(codes: Iterable[str]) -> int:
    return sum(1 << _SECTIONS.index(s) for s in {c[0] for c in codes})


def _class_ids(codes: Iterable[str]) -> list[int]:
    return sorted({_classes.id(c[:3]) for c in codes if len(c) >= 3})


class _CodeColumns:
    """Sections as a bit mask and up to four classes per row as columns, so that sharing a section or
    a class (field 0.1 / 0.3) is checked for many rows without touching the huge postings of those
    levels. Rows with more classes keep them in ``overflow``."""

    @staticmethod
    def spec() -> dict[str, Any]:
        spec: dict[str, Any] = {"sections": np.int64}
        spec.update({f"class{i}": np.int64 for i in range(_CLASS_SLOTS)})
        return spec

    @staticmethod
    def values(codes: Iterable[str]) -> dict[str, int]:
        codes = tuple(codes)
        ids = _class_ids(codes)
        padded = (ids + [-1] * _CLASS_SLOTS)[:_CLASS_SLOTS]
        values = {"sections": _section_mask(codes)}
        values.update({f"class{i}": v for i, v in enumerate(padded)})
        return values

    @staticmethod
    def shared_level_scores(
        table: Table, overflow: Mapping[int, frozenset[int]], slots: IntArray, codes: Iterable[str]
    ) -> FloatArray:
        """Per row: 0.3 if it shares a class with ``codes``, 0.1 a section, else 0."""
        out = np.zeros(len(slots))
        codes = tuple(codes)
        if not codes or not len(slots):
            return out
        sections = table.cols["sections"][slots]
        section_bits = _section_mask(codes)
        out[(sections & section_bits) != 0] = LEVEL_SCORES[1]
        wanted = [_classes.get(c[:3]) for c in codes if len(c) >= 3]
        wanted = [w for w in wanted if w >= 0]
        if wanted:
            hit = np.zeros(len(slots), dtype=bool)
            for i in range(_CLASS_SLOTS):
                column = table.cols[f"class{i}"][slots]
                for class_id in set(wanted):
                    hit |= column == class_id
            if overflow:
                wanted_set = set(wanted)
                for row in np.flatnonzero(table.cols[f"class{_CLASS_SLOTS - 1}"][slots] >= 0).tolist():
                    extra = overflow.get(int(slots[row]))
                    if extra is not None and extra & wanted_set:
                        hit[row] = True
            out[hit] = LEVEL_SCORES[2]
        return out


class _Index:
    def __init__(self, columns: Mapping[str, Any], *, ordered_ids: bool = False) -> None:
        """``ordered_ids``: keep the rows in the order of their ids too (:meth:`first_by_id`)."""
        spec = dict(columns)
        spec.update(_CodeColumns.spec())
        spec.update({f"terr{i}": np.uint64 for i in range(TERRITORY_WORDS)})
        self.table = Table(spec)
        self.text = Postings(self.table)
        self.entities: dict[str, Any] = {}
        self._by_id = IdOrder(self.table) if ordered_ids else None
        self._class_overflow: dict[int, frozenset[int]] = {}
        self._field_acc = np.zeros(0)
        self._mark = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.table)

    def _store(
        self, entity_id: str, entity: Any, values: dict[str, Any], codes: tuple[str, ...], terr: Iterable[str]
    ) -> int:
        values = dict(values)
        values.update(_CodeColumns.values(codes))
        values.update({f"terr{i}": w for i, w in enumerate(territory_words(terr))})
        slot = self.table.add(entity_id, values)
        if self._by_id is not None:
            self._by_id.add(entity_id)
        class_ids = _class_ids(codes)
        if len(class_ids) > _CLASS_SLOTS:
            self._class_overflow[slot] = frozenset(class_ids[_CLASS_SLOTS:])
        self.entities[entity_id] = entity
        return slot

    def _unstore(self, entity_id: str) -> int | None:
        slot = self.table.remove(entity_id)
        self.entities.pop(entity_id, None)
        if slot is not None:
            self._class_overflow.pop(slot, None)
            if self._by_id is not None:
                self._by_id.remove(entity_id)
        return slot

    def _scratch(self) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Dense per-slot accumulators of the field and of the rows found, reused between look-ups
        (zeroed after each)."""
        if len(self._field_acc) < self.table.capacity:
            self._field_acc = np.zeros(self.table.capacity)
            self._mark = np.zeros(self.table.capacity, dtype=bool)
        return self._field_acc, self._mark

    def column(self, name: str, slots: IntArray) -> Any:
        return self.table.cols[name][slots]

    def territories_overlap(self, slots: IntArray, words: list[int]) -> Any:
        hit = np.zeros(len(slots), dtype=bool)
        for i, word in enumerate(words):
            if word:
                hit |= (self.table.cols[f"terr{i}"][slots] & np.uint64(word)) != 0
        return hit

    def ids(self, slots: IntArray) -> list[str]:
        ids = self.table.ids
        return [ids[s] for s in slots.tolist()]

    def first_by_id(self, slots: IntArray) -> str | None:
        """The first id among the rows in ``slots``, None if there are none (``ordered_ids``)."""
        return self._order().first(slots)

    def ids_before(self, entity_id: str) -> npt.NDArray[np.bool_]:
        """Per slot, whether its row's id comes before ``entity_id`` (``ordered_ids``)."""
        return self._order().before(entity_id)

    def _order(self) -> IdOrder:
        if self._by_id is None:
            raise TypeError("this index was built without ordered_ids")
        return self._by_id

    def on_topic(
        self, weights: Mapping[str, float], codes: tuple[str, ...], *, class_levels: bool = True
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        raise NotImplementedError

    def with_class_levels(self, slots: IntArray, field: FloatArray, codes: tuple[str, ...]) -> FloatArray:
        """``field`` raised to the class or section level the rows share with ``codes``."""
        if not codes or not len(slots):
            return field
        return np.maximum(field, _CodeColumns.shared_level_scores(self.table, self._class_overflow, slots, codes))

    def relevance(
        self, slots: IntArray, weights: Mapping[str, float], codes: tuple[str, ...]
    ) -> tuple[FloatArray, FloatArray]:
        """Raw text relevance and field score against the given rows, whether on topic or not."""
        found, text_raw, field = self.on_topic(weights, codes)
        text_out = np.zeros(len(slots))
        field_out = _CodeColumns.shared_level_scores(self.table, self._class_overflow, slots, codes)
        if len(found):
            position = np.searchsorted(found, slots)
            position[position >= len(found)] = 0
            present = found[position] == slots
            text_out[present] = text_raw[position[present]]
            field_out[present] = np.maximum(field_out[present], field[position[present]])
        return text_out, field_out


class DocIndex(_Index):
    """Documents (offers, resolved financing requests): text postings weighted by BM25 saturation,
    IPC postings at every level of every code."""

    def __init__(self, columns: Mapping[str, Any]) -> None:
        super().__init__(columns)
        self.ipc = Postings(self.table)

    def add(
        self,
        entity_id: str,
        entity: Any,
        values: dict[str, Any],
        *,
        codes: tuple[str, ...],
        territories: Iterable[str],
        term_weights: Mapping[str, float],
    ) -> int:
        slot = self._store(entity_id, entity, values, codes, territories)
        prefixes = tuple(dict.fromkeys(level for code in codes for level in levels(code)))
        self.text.add(slot, term_weights.keys(), term_weights.values())
        self.ipc.add(slot, prefixes)
        return slot

    def remove(self, entity_id: str) -> None:
        """Remove a document; its keys are read back from the stored entity (``terms`` and ``codes``)."""
        entity = self.entities.get(entity_id)
        if entity is not None and self._unstore(entity_id) is not None:
            self.text.note_removed(entity.terms)
            self.ipc.note_removed(dict.fromkeys(level for code in entity.codes for level in levels(code)))

    def on_topic(
        self, query: Mapping[str, float], codes: tuple[str, ...], *, class_levels: bool = True
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Documents on topic with a query: (slots, raw text relevance, field score).

        With ``class_levels`` False the field leaves out sharing only a class or a section (0.3, 0.1:
        never enough to be on topic), for a caller that adds it (:meth:`with_class_levels`) to the
        few documents it goes on to score.

        Terms too light to lift a document over the text gate on their own (together, under
        ``TOPICAL_TEXT``² of the query's weight) still count in the relevance of the documents found,
        but do not make documents candidates: a word found everywhere does not pull in the whole book.
        """
        field_acc, mark = self._scratch()
        size = self.table.size
        light = _light_terms(query)
        found: list[IntArray] = []
        weighed: list[FloatArray] = []
        for term, weight in query.items():
            slots, sat = self.text.lookup(term)
            if len(slots):
                found.append(slots)
                weighed.append(weight * sat)
                if term not in light:
                    mark[slots] = True
        text_acc = _summed(found, weighed, size)
        for code in codes:
            code_levels = levels(code)
            for depth, prefix in enumerate(code_levels, start=1):
                contained = depth == len(code_levels)
                if depth < 3 and not contained:
                    continue
                slots, _ = self.ipc.lookup(prefix)
                if len(slots):
                    score = 1.0 if contained else LEVEL_SCORES[depth]
                    field_acc[slots] = np.maximum(field_acc[slots], score)
                    mark[slots] = True
        slots = np.flatnonzero(mark[:size])
        text_raw = text_acc[slots]
        field = field_acc[slots]
        field_acc[:size] = 0.0
        mark[:size] = False
        if class_levels:
            field = self.with_class_levels(slots, field, codes)
        return slots, text_raw, field


def _summed(slots: list[IntArray], weights: list[FloatArray], size: int) -> FloatArray:
    """Per slot, the sum of the weights posted to it: one pass over every posting (a scatter-add per
    term costs a gather and a scatter each). Each slot's weights are added in the order of the terms,
    as a running sum over the terms would."""
    if not slots:
        return np.zeros(size)
    summed = np.bincount(np.concatenate(slots), np.concatenate(weights), minlength=size)
    return summed.astype(np.float64, copy=False)  # it is float64 already: for the type checker


def _reached(text: FloatArray, field: FloatArray) -> IntArray:
    """The rows a look-up reached: those its postings left above 0 (cheaper than marking each posting
    list's rows as it goes). A row that only zero weights reached is on topic with nothing, and
    :meth:`_Index.relevance` gives it the same zeros."""
    return np.flatnonzero((text > 0) | (field > 0))


def _light_terms(query: Mapping[str, float]) -> set[str]:
    """The lightest terms whose weights together stay under the text gate's share of the query."""
    budget = TOPICAL_TEXT * TOPICAL_TEXT * query_norm(query) * (1 - 1e-9)
    light: set[str] = set()
    spent = 0.0
    for term, weight in sorted(query.items(), key=lambda item: (item[1], item[0])):
        if spent + weight >= budget:
            break
        spent += weight
        light.add(term)
    return light


class QueryIndex(_Index):
    """Stored queries (buyer demands, lenders, investors): text postings weighted by the query's term
    weights; IPC postings by every level prefix of each code (shared depth) and by the code itself
    (containment)."""

    def __init__(self, columns: Mapping[str, Any], *, ordered_ids: bool = False) -> None:
        super().__init__(columns, ordered_ids=ordered_ids)
        self.prefix = Postings(self.table)
        self.exact = Postings(self.table)

    def add(
        self,
        entity_id: str,
        entity: Any,
        values: dict[str, Any],
        *,
        codes: tuple[str, ...],
        territories: Iterable[str],
        query: Mapping[str, float],
    ) -> int:
        slot = self._store(entity_id, entity, values, codes, territories)
        prefixes = tuple(dict.fromkeys(level for code in codes for level in levels(code)[2:]))
        self.text.add(slot, query.keys(), query.values())
        self.prefix.add(slot, prefixes)
        self.exact.add(slot, codes)
        return slot

    def remove(self, entity_id: str) -> None:
        """Remove a stored query; its keys are read back from the entity (``query`` and ``codes``)."""
        entity = self.entities.get(entity_id)
        if entity is not None and self._unstore(entity_id) is not None:
            self.text.note_removed(entity.query)
            self.prefix.note_removed(dict.fromkeys(level for code in entity.codes for level in levels(code)[2:]))
            self.exact.note_removed(entity.codes)

    def on_topic(
        self, term_weights: Mapping[str, float], codes: tuple[str, ...], *, class_levels: bool = True
    ) -> tuple[IntArray, FloatArray, FloatArray]:
        """Stored queries on topic with a document: (slots, raw text relevance, field score); for
        ``class_levels`` see :meth:`DocIndex.on_topic`."""
        field_acc, _ = self._scratch()
        size = self.table.size
        found: list[IntArray] = []
        weighed: list[FloatArray] = []
        for term, sat in term_weights.items():
            slots, weight = self.text.lookup(term)
            if len(slots):
                found.append(slots)
                weighed.append(weight * sat)
        text_acc = _summed(found, weighed, size)
        for code in codes:
            for depth, prefix in enumerate(levels(code), start=1):
                if depth >= 3:
                    slots, _ = self.prefix.lookup(prefix)
                    if len(slots):
                        field_acc[slots] = np.maximum(field_acc[slots], LEVEL_SCORES[depth])
                slots, _ = self.exact.lookup(prefix)
                if len(slots):
                    field_acc[slots] = 1.0
        slots = _reached(text_acc, field_acc[:size])
        text_raw = text_acc[slots]
        field = field_acc[slots]
        field_acc[:size] = 0.0
        if class_levels:
            field = self.with_class_levels(slots, field, codes)
        return slots, text_raw, field


_EMPTY_INT: IntArray = np.zeros(0, dtype=np.int64)
_EMPTY_FLOAT: FloatArray = np.zeros(0)
assert LEVEL_SCORES[3] == TOPICAL_FIELD
