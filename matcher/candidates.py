"""A candidate match: who seeks, who is found (and who finances, for a bridge), how well it scores."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Literal

from matcher.ipc import NO_CODES, FieldCodes

__all__ = ["Candidate", "SeekerKey", "match_id"]

MatchKind = Literal["transaction", "financing", "bridge"]
SeekerKey = tuple[Literal["demand", "financing"], str]


def match_id(kind: str, *party_ids: str) -> str:
    """Stable id of a pair (or triple): a hash of the kind and the ids of every party to it."""
    digest = hashlib.blake2b("\x1f".join((kind, *party_ids)).encode(), digest_size=12)
    return digest.hexdigest()


@dataclass(slots=True)
class Candidate:
    """A value: nothing changes a candidate once made (a new score is a new candidate, see
    ``matcher.inference``). It is not a frozen dataclass for speed alone: a frozen one sets each of its
    fields through ``object.__setattr__``, and building one took 1.44 µs against 0.22, where a busy
    trigger builds thousands (a financier on the 1M book, 1,234–2,257; bench/JOURNAL.md)."""

    kind: MatchKind
    seeker_kind: Literal["demand", "financing"]
    seeker_id: str
    seeker_version: int
    counterpart_kind: Literal["offer", "demand"]
    counterpart_id: str
    counterpart_version: int
    financier_id: str | None
    financier_version: int | None
    score: float
    match_id: str = field(default="", compare=False)
    field_codes: FieldCodes = field(default=NO_CODES, compare=False)
    """The counterpart's IPC codes, when the seeker names none and its field is inferred."""
    inference_weight: float = field(default=0.0, compare=False)
    """When the seeker's field is inferred (:mod:`matcher.inference`): the summed weight of the parts
    ``score`` is the mean of, which the inferred field joins; 0 otherwise."""
    inferred_field: float | None = field(default=None, compare=False)
    """The inferred field part, once the seeker's open matches are ranked with it (``score`` then
    includes it)."""

    def __post_init__(self) -> None:
        if not self.match_id:
            ids = (self.seeker_id, self.counterpart_id) + ((self.financier_id,) if self.financier_id else ())
            self.match_id = match_id(self.kind, *ids)

    def __getstate__(self) -> tuple[object, ...]:
        """The fields in order, as a frozen dataclass pickles them: books saved by ``bench.engine
        --book-file`` before this class was thawed still load, so two commits compare on one book."""
        return tuple(getattr(self, name) for name in _FIELD_NAMES)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(_FIELD_NAMES, state, strict=True):
            setattr(self, name, value)

    @property
    def seeker(self) -> SeekerKey:
        return (self.seeker_kind, self.seeker_id)

    @property
    def order(self) -> tuple[float, str, str]:
        """Rank order: best score first, ties broken by ids."""
        return (-self.score, self.counterpart_id, self.financier_id or "")

    def same_state(self, other: Candidate) -> bool:
        """Same match id, versions and score: re-announcing it would be an exact repeat."""
        return (
            self.match_id == other.match_id
            and self.seeker_version == other.seeker_version
            and self.counterpart_version == other.counterpart_version
            and self.financier_version == other.financier_version
            and self.score == other.score
        )


_FIELD_NAMES = tuple(f.name for f in fields(Candidate))
"""Read once: a saved book holds millions of candidates, and ``fields`` builds its tuple at each call."""


def top_k(candidates: list[Candidate], k: int) -> list[Candidate]:
    return sorted(candidates, key=lambda c: c.order)[:k]
