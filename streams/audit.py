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
from streams.merging import candidate_of_event

__all__ = ["Audit", "OutputFold", "audit"]


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


class OutputFold:
    """The open matches of an output log, folded one event at a time, so that an audit of millions of
    match events holds the open matches and one hash per match id, not the events themselves (a 1M-event
    load wrote 16.6M of them)."""

    def __init__(self) -> None:
        self.events = 0
        self.duplicates = 0
        self.open: dict[str, Candidate] = {}
        self._last_said: dict[str, int] = {}  # hash of (type, versions, score) of each match's last event

    def add(self, event: Mapping[str, Any]) -> None:
        c = candidate_of_event(event)
        said = hash((event["type"], c.seeker_version, c.counterpart_version, c.financier_version, c.score))
        self.events += 1
        self.duplicates += self._last_said.get(c.match_id) == said
        self._last_said[c.match_id] = said
        if event["type"] == "match":
            self.open[c.match_id] = c
        else:
            self.open.pop(c.match_id, None)

    def add_all(self, events: Iterable[Mapping[str, Any]]) -> OutputFold:
        for event in events:
            self.add(event)
        return self

    def against(self, oracle: Mapping[str, Candidate]) -> Audit:
        both = self.open.keys() & oracle.keys()
        return Audit(
            events=self.events,
            missing=len(oracle.keys() - self.open.keys()),
            extra=len(self.open.keys() - oracle.keys()),
            changed=sum(not self.open[m].same_state(oracle[m]) for m in both),
            duplicates=self.duplicates,
        )


def audit(match_events: Iterable[Mapping[str, Any]], oracle: Mapping[str, Candidate]) -> Audit:
    return OutputFold().add_all(match_events).against(oracle)
