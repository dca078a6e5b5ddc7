"""The merger's state: each seeker's open matches (its top K), with a reserve behind them.

For each seeker the merger keeps its best ``P + R`` candidates, and whether that list is *complete* —
holds every eligible candidate, because there were fewer. P is K, or the pool a seeker's inferred field
is ranked over (:mod:`matcher.inference`) when that is deeper, and R is the reserve. Open matches are
the first K, or the best K of the pool by the score with the inferred field. When a member leaves
(withdrawn, expired, updated), it is dropped and the next in line moves up; the shards are asked again
only when an incomplete list runs short of P, so its first P are always exactly the book's. A new
candidate enters when it beats the last of an incomplete list, or anywhere in a complete one.

A shard of the service keeps the same lists over its own offers, and answers the merger with its
*ranked prefix* — the first K, or the whole pool of a seeker whose field is inferred — as they rank
without the inferred field: the merger ranks the merged pool.

Changes are collected per event (:meth:`Views.begin` … :meth:`Views.finish`), and what is announced is
the difference of each touched seeker's open matches before and after.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from operator import attrgetter, is_

from matcher.candidates import Candidate, SeekerKey
from matcher.config import MatchingConfig
from matcher.inference import open_ranking, reranked

__all__ = ["ViewChange", "Views"]

EntityKey = tuple[str, str]
ViewChange = tuple[SeekerKey, list[tuple[Candidate, int]], list[Candidate]]
"""(seeker, announced with their rank, left)."""


def _members_of(candidate: Candidate) -> list[EntityKey]:
    keys: list[EntityKey] = [(candidate.counterpart_kind, candidate.counterpart_id)]
    if candidate.financier_id is not None:
        keys.append(("demand", candidate.financier_id))
    return keys


def _keys_still_held(gone: Candidate, members: Iterable[Candidate]) -> set[EntityKey]:
    """The keys of ``gone`` that the other members of its list still involve: its financier, which can
    bridge several. Its counterpart is in no other, as a list holds each counterpart once
    (:meth:`Views.check_index`); so for a candidate without a financier, the members are not read."""
    if gone.financier_id is None:
        return set()
    financier = gone.financier_id
    return {("demand", financier)} if any(c.financier_id == financier for c in members) else set()


def _inferred(members: Sequence[Candidate]) -> bool:
    """Whether these candidates of one seeker are ranked with an inferred field (all are, or none)."""
    return bool(members) and members[0].inference_weight > 0


class Views:
    def __init__(self, config: MatchingConfig, *, local: bool = False) -> None:
        """``local``: the lists of one shard among several, whose views are ranked prefixes."""
        self.config = config
        self.local = local
        self.top_k = config.top_k
        self._lists: dict[SeekerKey, list[Candidate]] = {}
        self._incomplete: set[SeekerKey] = set()
        """Seekers whose lists were cut at ``depth``: an eligible candidate may lie beyond, so a newcomer
        must beat the last member. A seeker not here holds every eligible candidate. A set rather than a
        dict of flags, for the reason given in :class:`~matcher.book.Book` for its versions."""
        self._holders: dict[EntityKey, set[SeekerKey]] = {}
        self._before: dict[SeekerKey, list[Candidate]] = {}
        self._ranked: dict[SeekerKey, list[Candidate]] = {}
        """The open matches of each seeker whose field is inferred, as :meth:`finish` last ranked them
        (it would otherwise rank the pool before a change as well as after), even when none is left at
        ``min_score``; not kept by a local view, which does not rank."""

    # ---- reading ---------------------------------------------------------------------------------
    def view(self, seeker: SeekerKey) -> list[Candidate]:
        """The seeker's open matches, best first; for a local view, its ranked prefix."""
        prefix = self._prefix(self._lists.get(seeker, []))
        if self.local or not _inferred(prefix):
            return prefix
        ranked = self._ranked.get(seeker) if seeker not in self._before else None
        return list(ranked) if ranked is not None else open_ranking(prefix, self.config)

    def _prefix(self, members: list[Candidate]) -> list[Candidate]:
        """What the open matches are drawn from: the first K, or the pool of an inferred field."""
        return members[: self._ranked_depth(members)]

    def _ranked_depth(self, members: Sequence[Candidate]) -> int:
        return self.config.ranked_depth(_inferred(members))

    def _depth(self, members: Sequence[Candidate]) -> int:
        return self.config.depth(_inferred(members))

    def holders_of(self, key: EntityKey) -> set[SeekerKey]:
        """Seekers whose lists (open matches or reserve) involve this entity."""
        return set(self._holders.get(key, ()))

    def floor(self, seeker: SeekerKey) -> float:
        """The score a new candidate needs to be worth sending (0 while every eligible one is)."""
        members = self._lists.get(seeker, [])
        if seeker not in self._incomplete or not members:
            return 0.0
        return members[-1].score

    def open_matches(self) -> dict[str, Candidate]:
        return {c.match_id: c for seeker in self._lists for c in self.view(seeker)}

    def __len__(self) -> int:
        return sum(len(self.view(seeker)) for seeker in self._lists)

    def check_index(self) -> None:
        """Raise if a list holds a counterpart twice (:func:`_keys_still_held` counts on it), if the
        index of holders is not exactly what the lists hold (a stale entry changes no match: a seeker
        is only looked at again for nothing, so only this check would see one; but it is memory never
        freed, for every entity that ever left a list), or if a kept ranking is not its seeker's."""
        expected: dict[EntityKey, set[SeekerKey]] = {}
        for seeker, members in self._lists.items():
            if len({c.counterpart_id for c in members}) != len(members):
                raise AssertionError(f"the list of {seeker} holds a counterpart twice")
            for candidate in members:
                for key in _members_of(candidate):
                    expected.setdefault(key, set()).add(seeker)
        if expected != self._holders:
            stale = {k: v for k, v in self._holders.items() if expected.get(k) != v}
            raise AssertionError(f"holders index differs from the lists: {len(stale)} keys, e.g. {list(stale)[:3]}")
        for seeker, ranked in self._ranked.items():
            if ranked != open_ranking(self._prefix(self._lists.get(seeker, [])), self.config):
                raise AssertionError(f"the ranking kept for {seeker} is not its pool's")

    # ---- changing, within one event ----------------------------------------------------------------
    def begin(self) -> None:
        self._before.clear()

    def _touch(self, seeker: SeekerKey) -> None:
        if seeker not in self._before:
            self._before[seeker] = self._prefix(self._lists.get(seeker, []))

    def replace(self, seeker: SeekerKey, answers: Sequence[Sequence[Candidate]]) -> None:
        """Replace a seeker's list with the merge of every shard's answer (each at most ``depth`` long)."""
        self._touch(seeker)
        merged = sorted((c for answer in answers for c in answer), key=lambda c: c.order)
        depth = self._depth(merged)
        complete = all(len(answer) < depth for answer in answers) and len(merged) <= depth
        self._store(seeker, merged[:depth], complete)

    def drop_member(self, key: EntityKey) -> set[SeekerKey]:
        """Remove every candidate involving this entity; returns the seekers now short of K (to ask
        the shards again)."""
        short = set()
        for seeker in list(self._holders.get(key, ())):
            self._touch(seeker)
            kept = [c for c in self._lists.get(seeker, []) if key not in _members_of(c)]
            complete = seeker not in self._incomplete
            self._store(seeker, kept, complete)
            if not complete and len(kept) < self._ranked_depth(kept):
                short.add(seeker)
        return short

    def admit(self, candidate: Candidate) -> None:
        seeker = candidate.seeker
        members = self._lists.get(seeker, [])
        complete = seeker not in self._incomplete
        order = candidate.order
        # Whether the seeker holds this counterpart already, from the holders index rather than by
        # reading its list: most candidates of a busy trigger fall below the last member.
        if seeker in self._holders.get((candidate.counterpart_kind, candidate.counterpart_id), ()):
            # The newer candidate for a counterpart replaces the older (a bridge's financier changes).
            self._touch(seeker)
            members = [c for c in members if c.counterpart_id != candidate.counterpart_id]
            members.insert(bisect.bisect_left(members, order, key=attrgetter("order")), candidate)
            self._store(seeker, members, complete)
            return
        if not complete and members and order >= members[-1].order:
            return
        # A counterpart new to the list: insert it, and let go of the one pushed past the depth. The
        # holders index changes by those two alone (a busy trigger admits a hundred candidates).
        self._touch(seeker)
        members.insert(bisect.bisect_left(members, order, key=attrgetter("order")), candidate)
        pushed_out = members.pop() if len(members) > self._depth(members) else None
        self._lists[seeker] = members
        self._mark(seeker, complete and pushed_out is None)
        if pushed_out is candidate:
            return  # a complete list already at its depth: it holds the same members, and is no longer complete
        self._hold(seeker, [candidate])
        if pushed_out is not None:
            self._unhold(seeker, [pushed_out], _keys_still_held(pushed_out, members))

    def finish(self) -> list[ViewChange]:
        """What changed in the open matches of every seeker touched since :meth:`begin`."""
        changes = []
        for seeker, old_prefix in sorted(item for item in self._before.items() if not self._same_prefix(*item)):
            old = self._ranked.pop(seeker) if seeker in self._ranked else self._rank(old_prefix)
            prefix = self._prefix(self._lists.get(seeker, []))
            new = self._rank(prefix, since=(old_prefix, old))
            if not self.local and _inferred(prefix):
                self._ranked[seeker] = new
            before = {c.match_id: c for c in old}
            after = {c.match_id for c in new}
            left = [c for c in old if c.match_id not in after]
            announced = [
                (c, rank)
                for rank, c in enumerate(new, start=1)
                if c.match_id not in before or not before[c.match_id].same_state(c)
            ]
            if announced or left:
                changes.append((seeker, announced, left))
        self._before.clear()
        return changes

    def _rank(
        self, prefix: list[Candidate], since: tuple[list[Candidate], list[Candidate]] | None = None
    ) -> list[Candidate]:
        """The open matches drawn from ``prefix`` (a local view's are the prefix itself); ``since``: the
        prefix before the change and its ranking, which :func:`~matcher.inference.reranked` starts from."""
        if self.local:
            return prefix
        return open_ranking(prefix, self.config) if since is None else reranked(*since, prefix, self.config)

    def _same_prefix(self, seeker: SeekerKey, old: list[Candidate]) -> bool:
        """Whether what the seeker's open matches are drawn from is still the very candidates it was, in
        the same order (most of a busy trigger's newcomers land in the reserve, behind it)."""
        new = self._prefix(self._lists.get(seeker, []))
        return len(new) == len(old) and all(map(is_, new, old))

    def touched(self) -> list[SeekerKey]:
        return list(self._before)

    # ---- bookkeeping -----------------------------------------------------------------------------
    def _store(self, seeker: SeekerKey, members: list[Candidate], complete: bool) -> None:
        old = self._lists.get(seeker, [])
        kept = {c.match_id for c in members}
        still_held = {key for c in members for key in _members_of(c)}
        self._unhold(seeker, [c for c in old if c.match_id not in kept], still_held)
        if members:
            self._lists[seeker] = members
            self._mark(seeker, complete)
            before = {c.match_id for c in old}
            self._hold(seeker, [c for c in members if c.match_id not in before])
        else:
            self._lists.pop(seeker, None)
            self._incomplete.discard(seeker)

    def _mark(self, seeker: SeekerKey, complete: bool) -> None:
        if complete:
            self._incomplete.discard(seeker)
        else:
            self._incomplete.add(seeker)

    def _hold(self, seeker: SeekerKey, members: Iterable[Candidate]) -> None:
        for candidate in members:
            for key in _members_of(candidate):
                self._holders.setdefault(key, set()).add(seeker)

    def _unhold(self, seeker: SeekerKey, members: Iterable[Candidate], still_held: set[EntityKey]) -> None:
        for candidate in members:
            for key in _members_of(candidate):
                if key in still_held:
                    continue
                holders = self._holders.get(key)
                if holders is not None:
                    holders.discard(seeker)
                    if not holders:
                        del self._holders[key]
