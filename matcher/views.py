"""The merger's state: each seeker's open matches (its top K), and who holds whom.

A view changes in two ways: it is recomputed from the shards' local top K (when the seeker, or a member
of its view, changed), or a percolated candidate is admitted because it beats the worst member. Either
way the difference between before and after is what gets announced (``match``) or revoked.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from matcher.candidates import Candidate, SeekerKey

__all__ = ["ViewChange", "Views"]

EntityKey = tuple[str, str]
ViewChange = tuple[list[tuple[Candidate, int]], list[Candidate]]
"""(announced with their rank, left)."""


def _members_of(candidate: Candidate) -> list[EntityKey]:
    keys: list[EntityKey] = [(candidate.counterpart_kind, candidate.counterpart_id)]
    if candidate.financier_id is not None:
        keys.append(("demand", candidate.financier_id))
    return keys


class Views:
    def __init__(self, top_k: int) -> None:
        self.top_k = top_k
        self._views: dict[SeekerKey, list[Candidate]] = {}
        self._holders: dict[EntityKey, set[SeekerKey]] = {}

    def view(self, seeker: SeekerKey) -> list[Candidate]:
        return list(self._views.get(seeker, ()))

    def holders_of(self, key: EntityKey) -> set[SeekerKey]:
        """Seekers whose open matches include this entity (as counterpart or financier)."""
        return set(self._holders.get(key, ()))

    def open_matches(self) -> dict[str, Candidate]:
        return {c.match_id: c for view in self._views.values() for c in view}

    def __len__(self) -> int:
        return sum(len(v) for v in self._views.values())

    def replace(self, seeker: SeekerKey, new: Iterable[Candidate]) -> ViewChange:
        new = sorted(new, key=lambda c: c.order)[: self.top_k]
        old = self._views.get(seeker, [])
        before = {c.match_id: c for c in old}
        after = {c.match_id for c in new}
        left = [c for c in old if c.match_id not in after]
        announced = [
            (c, rank)
            for rank, c in enumerate(new, start=1)
            if c.match_id not in before or not before[c.match_id].same_state(c)
        ]
        self._unhold(seeker, old, remaining=())
        self._hold(seeker, new)
        if new:
            self._views[seeker] = new
        else:
            self._views.pop(seeker, None)
        return announced, left

    def admit(self, candidate: Candidate) -> ViewChange:
        """Insert a candidate that is new to the seeker's view if it ranks in the top K."""
        view = self._views.get(candidate.seeker, [])
        if any(c.match_id == candidate.match_id for c in view):
            return self.replace(candidate.seeker, [c for c in view if c.match_id != candidate.match_id] + [candidate])
        if len(view) >= self.top_k and candidate.order >= view[-1].order:
            return [], []
        orders = [c.order for c in view]
        position = bisect.bisect_left(orders, candidate.order)
        view = [*view[:position], candidate, *view[position:]]
        left = view[self.top_k :]
        view = view[: self.top_k]
        self._views[candidate.seeker] = view
        self._hold(candidate.seeker, [candidate])
        self._unhold(candidate.seeker, left, remaining=view)
        return [(candidate, position + 1)], left

    def _hold(self, seeker: SeekerKey, members: Iterable[Candidate]) -> None:
        for candidate in members:
            for key in _members_of(candidate):
                self._holders.setdefault(key, set()).add(seeker)

    def _unhold(self, seeker: SeekerKey, members: Iterable[Candidate], remaining: Iterable[Candidate]) -> None:
        still_held = {key for c in remaining for key in _members_of(c)}
        for candidate in members:
            for key in _members_of(candidate):
                if key in still_held:
                    continue
                holders = self._holders.get(key)
                if holders is not None:
                    holders.discard(seeker)
                    if not holders:
                        del self._holders[key]
