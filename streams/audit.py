"""Checking a run: the open matches folded from ``patent.matches`` against the brute-force oracle.

``missing`` are open in the oracle but not in the fold, ``extra`` the reverse, ``changed`` open in both
with other versions or another score; ``duplicates`` are events that repeat the previous event of
their match exactly (same type, versions and score) — harmless to a consumer that drops them, and
counted. (A match that leaves a top K and later comes back is announced again: that is no repeat.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from matcher.candidates import Candidate
from matcher.oracle import fold
from streams.merging import candidate_of_event

__all__ = ["Audit", "audit"]


@dataclass(frozen=True)
class Audit:
    events: int
    missing: int
    extra: int
    changed: int
    duplicates: int

    @property
    def equal(self) -> bool:
        return self.missing == self.extra == self.changed == 0


def audit(match_events: Iterable[Mapping[str, Any]], oracle: Mapping[str, Candidate]) -> Audit:
    events = list(match_events)
    last: dict[str, tuple[Any, ...]] = {}
    duplicates = 0
    for event in events:
        c = candidate_of_event(event)
        said = (event["type"], c.seeker_version, c.counterpart_version, c.financier_version, c.score)
        duplicates += last.get(c.match_id) == said
        last[c.match_id] = said
    folded = {match_id: candidate_of_event(event) for match_id, event in fold(events).items()}
    both = folded.keys() & oracle.keys()
    return Audit(
        events=len(events),
        missing=len(oracle.keys() - folded.keys()),
        extra=len(folded.keys() - oracle.keys()),
        changed=sum(not folded[m].same_state(oracle[m]) for m in both),
        duplicates=duplicates,
    )
