"""IPC codes as matching reads them: their levels, what sharing a level scores, and an offer's codes
with the levels an inferred field (:mod:`matcher.inference`) ranks by, worked out once per offer."""

from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from functools import lru_cache

from schemas import ipc_levels

__all__ = ["LEVEL_SCORES", "NO_CODES", "FieldCodes", "field_codes", "levels"]

LEVEL_SCORES = (0.0, 0.1, 0.3, 0.6, 0.8, 1.0)
"""Score by depth of the deepest shared level: none, section, class, subclass, main group, subgroup."""

_TENTHS = tuple(round(score * 10) for score in LEVEL_SCORES)
"""The field part by depth of the deepest shared level, in tenths: sums of them are exact."""

_THERMOMETERS = tuple((1 << tenths) - 1 for tenths in range(11))
"""Shared ints: a thermometer code above 256 would otherwise be a new object in every offer's tuple."""


@lru_cache(maxsize=65536)
def levels(code: str) -> tuple[str, ...]:
    """Section, class, subclass, main group, subgroup: as far as ``code`` goes."""
    return tuple(sys.intern(level) for level in ipc_levels(code))


@dataclass(frozen=True, slots=True, weakref_slot=True)
class FieldCodes:
    """An offer's IPC codes, with what ranking a pool by an inferred field reads of them.

    A heavy offer's trigger ranks dozens of pools, each of whose twenty members is compared with five
    voters; these were cached per tuple of codes, and a 100k book holds 20,017 distinct tuples: the
    caches missed 30% of their look-ups after a restart, and the slowest offers paid about a tenth of
    their time for it (bench/JOURNAL.md, 5 December, evening). Worked out when the offer's event is converted, they are
    never missing. Made by :func:`field_codes`, which shares one per distinct tuple of codes."""

    codes: tuple[str, ...]
    levels: tuple[str, ...]
    """Every level of every code, once."""
    thermometers: tuple[int, ...]
    """For each of ``levels``, the field part (in tenths, t) that a code sharing it scores against these
    codes (the best over them; a code's own level: 10), as a thermometer code: t ones (``2**t - 1``).
    :func:`matcher.inference.closeness_by_level` places those of a pool's voters side by side."""


_shared: weakref.WeakValueDictionary[tuple[str, ...], FieldCodes] = weakref.WeakValueDictionary()
"""The :class:`FieldCodes` some entity or candidate holds, by codes: they live as long as their holders."""


def field_codes(codes: tuple[str, ...]) -> FieldCodes:
    """The :class:`FieldCodes` of ``codes``, one per distinct tuple while anything holds it."""
    found = _shared.get(codes)
    if found is None:
        found = _shared[codes] = _worked_out(codes)
    return found


def _worked_out(codes: tuple[str, ...]) -> FieldCodes:
    """Each level of ``codes`` once, with the best field part (in tenths) that sharing it scores."""
    best: dict[str, int] = {}
    for code in codes:
        code_levels = levels(code)
        for depth, level in enumerate(code_levels, start=1):
            tenths = 10 if depth == len(code_levels) else _TENTHS[depth]
            if best.get(level, 0) < tenths:
                best[level] = tenths
    return FieldCodes(codes, tuple(best), tuple(_THERMOMETERS[tenths] for tenths in best.values()))


NO_CODES = field_codes(())
"""What a candidate holds when its seeker's field is not inferred."""
