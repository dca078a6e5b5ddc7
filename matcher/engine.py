"""The engine: validated events in, match and revoke notices out.

:class:`Engine` runs S shards and the merger in one process — the whole engine when S = 1, and the same
split the service distributes over Kafka when S > 1. Either way the open matches after a log are the
top K of every seeker in the final book (the invariant of DESIGN.md), which ``matcher.oracle`` computes
by brute force for the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from matcher.book import Entity, Outcome, kind_of
from matcher.candidates import Candidate, SeekerKey
from matcher.config import MatchingConfig
from matcher.entities import Demand, Offer, demand_from_event, offer_from_event, request_from_event
from matcher.explain import Explanation, explain_financing, explain_offer
from matcher.shard import Shard, ShardUpdate
from matcher.text import TextAnalyzer, default_analyzer
from matcher.views import Views
from schemas import BuyerDemand, EntityRef, FinancingRequest, InputEvent, MatchEvent, PatentOffer

__all__ = ["Engine", "Notice", "Result", "entity_from_event"]

RevokeReason = Literal["withdrawn", "expired", "updated-no-longer-fits", "superseded"]


@dataclass(frozen=True, slots=True)
class Notice:
    """One output of the engine: a match entering (or changing in) a seeker's view, or leaving it."""

    type: Literal["match", "revoke"]
    candidate: Candidate
    trigger_event_id: str
    trigger_at: datetime
    rank: int | None = None
    reason: RevokeReason | None = None
    explanation: Explanation | None = None

    def to_event(self, emitted_at: datetime) -> MatchEvent:
        c = self.candidate
        financier = None
        if c.financier_id is not None and c.financier_version is not None:
            financier = EntityRef(entity="demand", id=c.financier_id, version=c.financier_version)
        e = self.explanation
        return MatchEvent(
            type=self.type,
            match_id=c.match_id,
            kind=c.kind,
            seeker=EntityRef(entity=c.seeker_kind, id=c.seeker_id, version=c.seeker_version),
            counterpart=EntityRef(entity=c.counterpart_kind, id=c.counterpart_id, version=c.counterpart_version),
            financier=financier,
            score=c.score if self.type == "match" else None,
            rank=self.rank,
            components=e.components if e else {},
            reasons=list(e.reasons) if e else [],
            matched_ipc=list(e.matched_ipc) if e else [],
            matched_terms=list(e.matched_terms) if e else [],
            facts=e.facts.to_model() if e else None,
            reason=self.reason,
            trigger_event_id=self.trigger_event_id,
            occurred_at=self.trigger_at,
            emitted_at=emitted_at,
        )


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    notices: list[Notice]
    candidates: int = 0
    """Candidates the trigger built: percolated ones and the members of recomputed local top Ks."""
    closed: tuple[tuple[str, str, str, bool], ...] = ()
    """(kind, id, why, is a seeker) of the entities that left the book: withdrawn, expired or updated."""
    forgotten: tuple[tuple[str, str], ...] = ()
    """(kind, id) of closed entities whose tombstones the book let go (``tombstone_retention_days``)."""


def entity_from_event(event: InputEvent, analyzer: TextAnalyzer, config: MatchingConfig) -> Entity:
    if isinstance(event, PatentOffer):
        return offer_from_event(event, analyzer, config)
    if isinstance(event, BuyerDemand):
        return demand_from_event(event, analyzer, config)
    if isinstance(event, FinancingRequest):
        return request_from_event(event, analyzer, config)
    raise TypeError(f"not an input event: {type(event).__name__}")


def _seeker_key(entity: Entity) -> SeekerKey | None:
    if isinstance(entity, Offer) or (isinstance(entity, Demand) and entity.is_financier):
        return None
    return ("demand", entity.id) if isinstance(entity, Demand) else ("financing", entity.id)


class Engine:
    """Whole (``shards=1``) or split (``shards=S``) matching, in one process."""

    def __init__(
        self,
        config: MatchingConfig | None = None,
        analyzer: TextAnalyzer | None = None,
        *,
        shards: int = 1,
        only_shard: int | None = None,
        explain_notices: bool = True,
    ) -> None:
        """``shards=S`` runs all S shards here; with ``only_shard=i`` the engine is shard i of S alone,
        as a worker of the service runs it: its views are then that shard's *local* top K, which the
        service's merger combines with the other shards' answers; shard 0 of 1 is the whole book, and its
        views are the open matches, ranked. With ``explain_notices=False`` match
        notices come without an explanation, for a caller that explains only the matches it publishes
        (:meth:`explain`)."""
        self.config = config or MatchingConfig()
        self.explain_notices = explain_notices
        self.analyzer = analyzer or default_analyzer()
        indexes = range(shards) if only_shard is None else [only_shard]
        self.shards = [Shard(self.config, self.analyzer, index=i, count=shards) for i in indexes]
        self.views = Views(self.config, local=only_shard is not None and shards > 1)

    def apply(self, event: InputEvent) -> Result:
        return self.apply_entity(entity_from_event(event, self.analyzer, self.config), event)

    def load(self, entity: Entity, *, withdrawn: bool = False) -> Outcome:
        """Put an entity into the book and indexes without matching: for rebuilding a shard from its
        stored state, and for building large books in benchmarks. Views are left as they are."""
        outcomes = [shard.apply(entity, withdrawn=withdrawn, percolate=False).outcome for shard in self.shards]
        return outcomes[0]

    def advance(self, watermark: float) -> None:
        """Move the watermark silently (after :meth:`load`): what it expires leaves the book and indexes."""
        for shard in self.shards:
            shard.advance(watermark)

    def rebuild_views(self) -> int:
        """Recompute every seeker's view from the shards, silently (no notices): after :meth:`load`,
        when the book was rebuilt but the views were not. Returns the number of seekers."""
        *_, seekers = self.rebuilding_views()
        return seekers

    def rebuilding_views(self, seekers_per_step: int = 32) -> Iterator[int]:
        """:meth:`rebuild_views` a few seekers at a time: it yields the count of seekers done after each
        step, so that a caller can do other work in between (the service answers its web pages and
        runs its other stages while a shard is rebuilt, which takes minutes at a large book). The views
        are complete when the iterator is exhausted; the engine must not be used before that."""
        home = self.shards[0]
        seekers: list[SeekerKey] = [("demand", d) for d in home.buyers.entities]
        seekers += [("financing", r) for r in home.requests.entities]
        self.views.begin()
        for start in range(0, len(seekers), seekers_per_step):
            for seeker in seekers[start : start + seekers_per_step]:
                self.views.replace(seeker, [shard.local_top_k(seeker) for shard in self.shards])
                self._update_floor(seeker)
            for shard in self.shards:
                shard.forget_scored_pairs()
            if start + seekers_per_step < len(seekers):
                yield start + seekers_per_step
        self.views.finish()
        yield len(seekers)

    def apply_entity(self, entity: Entity, event: InputEvent) -> Result:
        updates = [shard.apply(entity, withdrawn=event.status == "withdrawn") for shard in self.shards]
        first = updates[0]
        closed = tuple((kind_of(e), e.id, why, _seeker_key(e) is not None) for e, why in first.closed)
        forgotten = tuple(first.forgotten)
        if first.outcome != "accepted" and not first.closed:
            return Result(first.outcome, [], closed=closed, forgotten=forgotten)
        notices, candidates = self._merge(updates, event)
        return Result(first.outcome, notices, candidates, closed=closed, forgotten=forgotten)

    def _merge(self, updates: list[ShardUpdate], event: InputEvent) -> tuple[list[Notice], int]:
        closures: dict[tuple[str, str], str] = {(kind_of(e), e.id): r for e, r in updates[0].closed}
        views = self.views
        views.begin()
        recompute: set[SeekerKey] = set()
        for entity, _ in updates[0].closed:
            key = (kind_of(entity), entity.id)
            if isinstance(entity, Demand) and entity.is_financier:
                # A bridge whose financier left may go on with another: ask the shards.
                recompute |= views.holders_of(key)
            recompute |= views.drop_member(key)
            if (seeker := _seeker_key(entity)) is not None:
                recompute.add(seeker)
        for entity in updates[0].opened:
            if (seeker := _seeker_key(entity)) is not None:
                recompute.add(seeker)
        for update in updates:
            recompute |= update.recompute
        candidates = sum(len(update.percolated) for update in updates)
        for seeker in sorted(recompute):
            answers = [shard.local_top_k(seeker) for shard in self.shards]
            candidates += sum(map(len, answers))
            views.replace(seeker, answers)
        for update in updates:
            for candidate in update.percolated:
                if candidate.seeker not in recompute:
                    views.admit(candidate)
        touched = views.touched()
        notices: list[Notice] = []
        for _, announced, left in views.finish():
            notices += self._notices(announced, left, closures, event)
        for seeker in touched:
            self._update_floor(seeker)
        return notices, candidates

    def _update_floor(self, seeker: SeekerKey) -> None:
        floor = self.views.floor(seeker)
        for shard in self.shards:
            shard.set_floor(seeker, floor)

    def _notices(
        self,
        announced: list[tuple[Candidate, int]],
        left: list[Candidate],
        closures: dict[tuple[str, str], str],
        event: InputEvent,
    ) -> list[Notice]:
        out = [Notice("revoke", c, event.event_id, event.occurred_at, reason=_revoke_reason(c, closures)) for c in left]
        out += [
            Notice(
                "match",
                c,
                event.event_id,
                event.occurred_at,
                rank=rank,
                explanation=self.explain(c) if self.explain_notices else None,
            )
            for c, rank in announced
        ]
        return out

    def explain(self, candidate: Candidate) -> Explanation:
        home = self.shards[0]
        if candidate.kind == "financing":
            return explain_financing(
                home.entity("financing", candidate.seeker_id),
                home.entity("demand", candidate.counterpart_id),
                self.config,
            )
        owner = next(s for s in self.shards if s.owns_offer(candidate.counterpart_id))
        financier = home.entity("demand", candidate.financier_id) if candidate.financier_id else None
        demand, offer = home.entity("demand", candidate.seeker_id), owner.entity("offer", candidate.counterpart_id)
        fit = owner.fresh_fit(demand, offer)
        return explain_offer(demand, offer, financier, self.config, fit, candidate.inferred_field)

    def open_matches(self) -> dict[str, Candidate]:
        return self.views.open_matches()

    def sizes(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for shard in self.shards:
            for name, size in shard.sizes().items():
                totals[name] = totals.get(name, 0) + size if name == "offers" else size
        return totals


def _revoke_reason(candidate: Candidate, closures: dict[tuple[str, str], str]) -> RevokeReason:
    if not closures:  # the event closed nothing (an arrival): whatever it pushed out was superseded
        return "superseded"
    keys = [(candidate.seeker_kind, candidate.seeker_id), (candidate.counterpart_kind, candidate.counterpart_id)]
    if candidate.financier_id is not None:
        keys.append(("demand", candidate.financier_id))
    found = {closures[k] for k in keys if k in closures}
    if "withdrawn" in found:
        return "withdrawn"
    if "expired" in found:
        return "expired"
    return "updated-no-longer-fits" if "updated" in found else "superseded"
