"""One shard of the engine: a part of the offers, all demands and requests, and the indexes over them.

A shard answers the two questions the merger asks (DESIGN.md, "Dataflow and scale-out"):
- :meth:`Shard.local_top_k` — the best K counterparts *in this shard* for a seeker;
- the ``percolated`` candidates of :meth:`Shard.apply` — the seekers a new offer or lender may enter.

Offers are split between shards by a hash of their id; demands and financing requests are held by
every shard. Every shard sees every event (to keep the book, the watermark and the patent registry the
same everywhere) but indexes only the offers it owns; financing requests are answered by shard 0.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from matcher.book import Book, Entity, Outcome
from matcher.candidates import Candidate, SeekerKey
from matcher.config import MatchingConfig
from matcher.entities import Demand, Offer, Request
from matcher.financing import INTENT_FOR, Collateral, Registry, resolve, served
from matcher.gap_pairs import BridgeHint, GapPairs
from matcher.index import DocIndex, QueryIndex, territory_words
from matcher.inference import inference_weight
from matcher.ipc import LEVEL_SCORES, NO_CODES
from matcher.scoring import OfferFit, financier_fits_bridge
from matcher.store import FloatArray, IntArray, Interner
from matcher.text import TextAnalyzer, query_norm, saturate
from matcher.vector import (
    BOUND_COLUMNS,
    INVEST,
    LEND,
    PairScores,
    bound_coefficients,
    financing_fits_on_few_columns,
    financing_scores,
    fits_on_few_columns,
    offer_fit_at,
    transaction_score_bounds,
    transaction_scores,
)

__all__ = ["Shard", "ShardUpdate"]

NAN = float("nan")
OFFER_COLUMNS = {
    "party": np.int64,
    "region": np.int64,
    "country": np.int64,
    "deal": np.int64,
    "price": np.float64,
    "rate_known": np.bool_,
    "granted": np.bool_,
    "min_expiry": np.float64,
    "strength": np.float64,
    "ts": np.float64,
    "value": np.float64,
}
BUYER_COLUMNS = {
    "floor": np.float64,
    # The range of price gaps over the budget among this demand's bridgeable offers (NaN: none); on a
    # large book, among those its top K scored (the others are bounded below its list: no financier
    # can bring them in). Kept as a superset — widened as offers arrive, reset when the demand is
    # recomputed — so a new lender finds every demand it might bridge with one vectorised test.
    "gap_lo": np.float64,
    "gap_hi": np.float64,
    "party": np.int64,
    "region": np.int64,
    "country": np.int64,
    "deal": np.int64,
    "has_budget": np.bool_,
    "rate_known": np.bool_,
    "bmax": np.float64,
    "has_terr": np.bool_,
    "require_granted": np.bool_,
    "min_rem": np.float64,
    "ts": np.float64,
    "has_codes": np.bool_,
    "qnorm": np.float64,
}
FINANCIER_COLUMNS = {
    "party": np.int64,
    "region": np.int64,
    "country": np.int64,
    "intent": np.int64,
    "bmin": np.float64,
    "bmax": np.float64,
    "rate_known": np.bool_,
    "has_terr": np.bool_,
    "require_granted": np.bool_,
    "max_ltv": np.float64,
    "ts": np.float64,
    "has_codes": np.bool_,
    "has_topic": np.bool_,
    "qnorm": np.float64,
}
SERVED_SLOTS = 4
SERVED_COLUMNS = {
    "serves_all": np.bool_,  # an investor, or a lender with no regions_served
    **{f"served{i}": np.int64 for i in range(SERVED_SLOTS)},  # interned regions_served codes, -1 padded
    "served_more": np.bool_,  # more codes than slots: the rest checked one by one
}
"""Where a lender lends, as columns: a financing request checks every lender at once (of the financiers'
table, apart from ``FINANCIER_COLUMNS``: those are the columns every financier query reads)."""
REQUEST_COLUMNS = {
    "floor": np.float64,
    "party": np.int64,
    "region": np.int64,
    "country": np.int64,
    "instrument": np.int64,
    "amount": np.float64,
    "granted": np.bool_,
    "value": np.float64,
    "strength": np.float64,
    "ts": np.float64,
}
REQUEST_FILTER_COLUMNS = {name: REQUEST_COLUMNS[name] for name in ("party", "instrument", "amount")}
"""What :func:`financing_fits_on_few_columns` reads of the requests."""


def _or_nan(value: float | None) -> float:
    return NAN if value is None else value


@dataclass
class ShardUpdate:
    """What one event changed in a shard, for the merger."""

    outcome: Outcome
    closed: list[tuple[Entity, str]] = field(default_factory=list)
    opened: list[Entity] = field(default_factory=list)
    percolated: list[Candidate] = field(default_factory=list)
    recompute: set[SeekerKey] = field(default_factory=set)
    forgotten: list[tuple[str, str]] = field(default_factory=list)


class Shard:
    score_all_up_to = 512
    """A demand's local top K scores every offer on topic up to this many; beyond, the best bounded first."""

    def __init__(self, config: MatchingConfig, analyzer: TextAnalyzer, *, index: int = 0, count: int = 1) -> None:
        self.config = config
        self.analyzer = analyzer
        self.index, self.count = index, count
        self.book = Book(tombstone_retention_s=config.tombstone_retention_days * 86_400)
        self.registry = Registry()
        self._ids = Interner()
        self.offers = DocIndex(OFFER_COLUMNS)
        self.buyers = QueryIndex({**BUYER_COLUMNS, **BOUND_COLUMNS})
        self.financiers = QueryIndex({**FINANCIER_COLUMNS, **SERVED_COLUMNS}, ordered_ids=True)
        self.requests = DocIndex(REQUEST_COLUMNS)
        self.pending: dict[str, Request] = {}
        self._requests_by_number: dict[str, set[str]] = {}
        # Per buyer demand, its gap pairs (price over budget: a financier must bridge) that could enter
        # its local top K. A new lender or investor is matched against these instead of recomputing
        # every demand.
        self._gap_pairs = GapPairs()
        self._scored: dict[tuple[str, str], tuple[PairScores, int]] = {}
        """The buyer demands and offers paired since the last event began (:meth:`fresh_fit`): their
        scores and the row of the pair. Kept no longer than the event (:meth:`apply` forgets them), in
        which neither side changes: they are scores of the versions in the book."""

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the pairs of the last event (:meth:`fresh_fit`), which a saved book does not
        need; so books saved by ``bench.engine --book-file`` before shards kept them still load."""
        return {name: value for name, value in self.__dict__.items() if name != "_scored"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._scored = {}

    # ---- ownership -------------------------------------------------------------------------------
    def owns_offer(self, offer_id: str) -> bool:
        """Whether the offer lives in this shard; the only shard holds every offer, without hashing."""
        return self.count == 1 or zlib.crc32(offer_id.encode()) % self.count == self.index

    @property
    def answers_financing(self) -> bool:
        return self.index == 0

    # ---- applying events -------------------------------------------------------------------------
    def apply(self, entity: Entity, *, withdrawn: bool, percolate: bool = True) -> ShardUpdate:
        """Apply one event's entity. With ``percolate=False`` (rebuilding after recovery, bulk loads)
        the indexes are updated but no candidates are computed."""
        self.forget_scored_pairs()
        change = self.book.apply(entity, withdrawn=withdrawn)
        update = ShardUpdate(
            change.outcome, closed=list(change.closed), opened=list(change.opened), forgotten=list(change.forgotten)
        )
        changed_numbers: set[str] = set()
        for old, _ in change.closed:
            changed_numbers |= self._remove(old)
        for new in change.opened:
            changed_numbers |= self._insert(new, update, percolate=percolate)
        if changed_numbers and self.answers_financing:
            update.recompute |= self._reresolve(changed_numbers)
        return update

    def advance(self, watermark: float) -> None:
        """Move the watermark without matching: close and unindex what it expires."""
        changed_numbers: set[str] = set()
        closed, _ = self.book.advance(watermark)
        for old, _ in closed:
            changed_numbers |= self._remove(old)
        if changed_numbers and self.answers_financing:
            self._reresolve(changed_numbers)

    def _insert(self, entity: Entity, update: ShardUpdate, *, percolate: bool) -> set[str]:
        if isinstance(entity, Offer):
            changed = self.registry.add(entity)
            if self.owns_offer(entity.id):
                weights = self._doc_weights(entity.terms, entity.doc_len)
                self.offers.add(
                    entity.id,
                    entity,
                    self._offer_values(entity),
                    codes=entity.codes,
                    territories=entity.territories,
                    term_weights=weights,
                )
                if percolate:
                    update.percolated.extend(self._percolate_offer(entity, weights))
            return changed
        if isinstance(entity, Demand):
            if entity.is_financier:
                self.financiers.add(
                    entity.id,
                    entity,
                    self._financier_values(entity) | self._served_values(entity),
                    codes=entity.codes,
                    territories=entity.territories,
                    query=entity.query,
                )
                if percolate and entity.budget_rate_known and entity.budget_max_cny is not None:
                    # (A financier without a known budget fits no bridge: financier_fits_bridge.)
                    update.recompute |= {("demand", d) for d in self._overflowing_bridgeable_by(entity)}
                    update.percolated.extend(self._bridges_through(entity))
                if self.answers_financing and percolate:
                    update.percolated.extend(self._percolate_financier(entity))
            else:
                self.buyers.add(
                    entity.id,
                    entity,
                    self._buyer_values(entity),
                    codes=entity.codes,
                    territories=entity.territories,
                    query=entity.query,
                )
            return set()
        if self.answers_financing:
            for number in entity.wanted_numbers:
                self._requests_by_number.setdefault(number, set()).add(entity.id)
            self._index_request(entity)
        return set()

    def _remove(self, entity: Entity) -> set[str]:
        if isinstance(entity, Offer):
            if self.owns_offer(entity.id):
                self.offers.remove(entity.id)
            return self.registry.remove(entity)
        if isinstance(entity, Demand):
            if entity.is_financier:
                self.financiers.remove(entity.id)
            else:
                self.buyers.remove(entity.id)
                self._gap_pairs.drop(entity.id)
            return set()
        if self.answers_financing:
            self.requests.remove(entity.id)
            self.pending.pop(entity.id, None)
            for number in entity.wanted_numbers:
                waiting = self._requests_by_number.get(number)
                if waiting is not None:
                    waiting.discard(entity.id)
                    if not waiting:
                        del self._requests_by_number[number]
        return set()

    def _index_request(self, request: Request) -> None:
        collateral = resolve(request, self.registry, self.analyzer)
        if collateral is None:
            self.pending[request.id] = request
            return
        self.pending.pop(request.id, None)
        self.requests.add(
            request.id,
            collateral,
            self._request_values(collateral),
            codes=collateral.codes,
            territories=collateral.territories,
            term_weights=self._doc_weights(collateral.terms, collateral.doc_len),
        )

    def _reresolve(self, numbers: set[str]) -> set[SeekerKey]:
        """Requests whose collateral completion may have changed: index them again."""
        touched = set().union(*(self._requests_by_number.get(n, set()) for n in numbers))
        for request_id in touched:
            request = self.pending.get(request_id)
            if request is None:
                request = self.requests.entities[request_id].request
                self.requests.remove(request_id)
            self._index_request(request)
        return {("financing", r) for r in touched}

    # ---- column values ---------------------------------------------------------------------------
    def _where(self, region: str) -> dict[str, int]:
        return {"region": self._ids.id(region), "country": self._ids.id(region[:2])}

    def _doc_weights(self, terms: dict[str, int] | Any, doc_len: int) -> dict[str, float]:
        c = self.config
        return {
            t: saturate(tf, doc_len, k1=c.bm25_k1, b=c.bm25_b, avg_len=c.bm25_avg_doc_len) for t, tf in terms.items()
        }

    def _offer_values(self, o: Offer) -> dict[str, Any]:
        return {
            "party": self._ids.id(o.party),
            **self._where(o.region),
            "deal": o.deal_mask,
            "price": _or_nan(o.price_cny),
            "rate_known": o.rate_known,
            "granted": o.all_granted,
            "min_expiry": o.min_expiry_ts,
            "strength": o.strength,
            "ts": o.ts,
            "value": _or_nan(o.value_cny),
        }

    def _buyer_values(self, d: Demand) -> dict[str, Any]:
        qnorm = query_norm(d.query)
        return {
            "party": self._ids.id(d.party),
            **self._where(d.region),
            "deal": d.deal_mask,
            "has_budget": d.has_budget,
            "rate_known": d.budget_rate_known,
            "bmax": _or_nan(d.budget_max_cny),
            "has_terr": bool(d.territories),
            "require_granted": d.require_granted,
            "min_rem": _or_nan(d.min_remaining_years),
            "ts": d.ts,
            "has_codes": bool(d.codes),
            "qnorm": qnorm,
            **bound_coefficients(has_codes=bool(d.codes), has_budget=d.has_budget, qnorm=qnorm, config=self.config),
        }

    def _financier_values(self, f: Demand) -> dict[str, Any]:
        return {
            "party": self._ids.id(f.party),
            **self._where(f.region),
            "intent": LEND if f.intent == "lend" else INVEST,
            "bmin": f.budget_min_cny or 0.0,
            "bmax": _or_nan(f.budget_max_cny),
            "rate_known": f.budget_rate_known,
            "has_terr": bool(f.territories),
            "require_granted": f.require_granted,
            "max_ltv": _or_nan(f.max_ltv),
            "ts": f.ts,
            "has_codes": bool(f.codes),
            "has_topic": bool(f.codes) or f.has_keywords,
            "qnorm": query_norm(f.query),
        }

    def _request_values(self, c: Collateral) -> dict[str, Any]:
        r = c.request
        return {
            "party": self._ids.id(r.party),
            **self._where(r.region),
            "instrument": LEND if r.instrument == "pledge_loan" else INVEST,
            "amount": _or_nan(r.amount_cny),
            "granted": c.all_granted,
            "value": _or_nan(c.value_cny),
            "strength": c.strength,
            "ts": r.ts,
        }

    def _served_values(self, f: Demand) -> dict[str, Any]:
        codes = [self._ids.id(code) for code in sorted(f.regions_served)]
        padded = (codes + [-1] * SERVED_SLOTS)[:SERVED_SLOTS]
        return {
            "serves_all": f.intent != "lend" or not f.regions_served,
            **{f"served{i}": code for i, code in enumerate(padded)},
            "served_more": len(codes) > SERVED_SLOTS,
        }

    def _financiers_serving(self, slots: IntArray, region: str) -> npt.NDArray[np.bool_]:
        """:func:`matcher.financing.served` of every financier in ``slots`` for a party in ``region``."""
        cols = self.financiers.table.cols
        ok = cols["serves_all"][slots].copy()
        wanted = [code for code in (self._ids.get(region), self._ids.get(region[:2])) if code >= 0]
        for i in range(SERVED_SLOTS):
            column = cols[f"served{i}"][slots]
            for code in wanted:
                ok |= column == code
        ids = self.financiers.table.ids
        for row in np.flatnonzero(cols["served_more"][slots] & ~ok).tolist():
            ok[row] = served(self.financiers.entities[ids[slots[row]]], region)
        return ok

    @staticmethod
    def _rows(index: DocIndex | QueryIndex, columns: dict[str, Any], slots: IntArray) -> dict[str, Any]:
        return {name: index.table.cols[name][slots] for name in columns}

    # ---- transactions and bridges ------------------------------------------------------------------
    def _best_financier(self, buyer: Demand, offer: Offer, gap: float, among: IntArray | None = None) -> Demand | None:
        """The financier that bridges ``gap`` for this pair, if any (of the slots ``among``, or of all):
        the nearest to the buyer (same region, then country), then the smallest id. The financiers are
        read tier by tier, nearest first, and only until a tier has one: the buyer's region holds few."""
        slots = self.financiers.table.live_slots() if among is None else among
        cols = self.financiers.table.cols
        nearness = self._nearness(cols["region"][slots], cols["country"][slots], buyer.region)
        for level in (2, 1, 0):
            tier = self._bridging(slots[nearness == level], buyer, offer, gap)
            first = self.financiers.first_by_id(tier[self._financiers_serving(tier, buyer.region)])
            if first is not None:
                financier: Demand = self.financiers.entities[first]
                return financier
        return None

    def _bridging(self, slots: IntArray, buyer: Demand, offer: Offer, gap: float) -> IntArray:
        """The financiers of ``slots`` that can finance ``gap`` for the pair, but for the regions they
        serve. The ticket range first, on its three columns: it leaves few of many to read further."""
        cols = self.financiers.table.cols
        with np.errstate(invalid="ignore"):
            slots = slots[cols["rate_known"][slots] & (gap <= cols["bmax"][slots]) & (gap >= cols["bmin"][slots])]
        if not len(slots):
            return slots
        party, max_ltv = cols["party"][slots], cols["max_ltv"][slots]
        with np.errstate(invalid="ignore", divide="ignore"):
            ok: npt.NDArray[np.bool_] = (party != self._ids.get(buyer.party)) & (party != self._ids.get(offer.party))
            territories = self.financiers.territories_overlap(slots, territory_words(offer.territories))
            ok &= ~cols["has_terr"][slots] | territories
            ok &= ~cols["require_granted"][slots] | offer.all_granted
            value = _or_nan(offer.value_cny)
            limits = (cols["intent"][slots] == LEND) & ~np.isnan(max_ltv)
            ok &= ~limits | (~np.isnan(value) & (gap / value <= max_ltv))
        return slots[ok]

    def _nearness(self, regions: IntArray, countries: IntArray, region: str) -> IntArray:
        """2 in the same region as ``region``, 1 in the same country, 0 elsewhere (interned ids)."""
        where = self._where(region)
        return np.where(regions == where["region"], 2, np.where(countries == where["country"], 1, 0))

    def _overflowing_bridgeable_by(self, financier: Demand) -> list[str]:
        """The overflowing demands (more gap pairs than are remembered) whose range of gaps meets the
        financier's budget: they are recomputed, having no pairs to test. The budget is known."""
        assert financier.budget_max_cny is not None
        cols, slot_of = self.buyers.table.cols, self.buyers.table.slot_of
        low, high = cols["gap_lo"], cols["gap_hi"]
        budget_min, budget_max = financier.budget_min_cny or 0.0, financier.budget_max_cny
        overflowing = self._gap_pairs.overflowing
        return sorted(d for d in overflowing if low[slot_of[d]] <= budget_max and high[slot_of[d]] >= budget_min)

    def _note_gap_pair(self, demand: Demand, offer: Offer, gap: float, score: float, best: Demand | None) -> None:
        buyer_slot = self.buyers.table.slot_of[demand.id]
        hint = self._hint(best, demand)
        self._gap_pairs.note(demand.id, buyer_slot, offer.id, offer.version, gap, score, hint)

    def _hint(self, financier: Demand | None, buyer: Demand) -> BridgeHint | None:
        if financier is None:
            return None
        slot = self.financiers.table.slot_of[financier.id]
        generation = int(self.financiers.table.gen[slot])
        return BridgeHint(financier.id, slot, generation, _near(financier, financier.version, buyer))

    def _bridges_through(self, financier: Demand) -> list[Candidate]:
        """The bridges a new financier now finances best: remembered gap pairs that it fits, where no
        financier ranked above it for that buyer fits too (newly bridged pairs, or pairs taken over
        from a farther or larger-id financier). The financier's budget is known."""
        assert financier.budget_max_cny is not None
        if not len(self._gap_pairs):
            return []
        buyer_cols = self.buyers.table.cols

        def nearness(buyer_slots: IntArray) -> IntArray:
            regions, countries = buyer_cols["region"][buyer_slots], buyer_cols["country"][buyer_slots]
            return self._nearness(regions, countries, financier.region)

        table = self.financiers.table
        contestable = self._gap_pairs.contestable(
            -np.inf if financier.budget_min_cny is None else financier.budget_min_cny,
            financier.budget_max_cny,
            np.maximum(self.config.min_score, buyer_cols["floor"]),
            financier.id,
            nearness,
            table,
        )
        # The live financiers (slots, regions, countries, id below the newcomer's): read only if a pair
        # gets that far.
        financiers: tuple[IntArray, IntArray, IntArray, npt.NDArray[np.bool_]] | None = None
        out = []
        demand: Demand | None = None
        ranked_above: IntArray | None = None  # the financiers ranked above the newcomer, when needed
        for pair in contestable:
            if demand is None or demand.id != pair.demand_id:
                demand = self.buyers.entities[pair.demand_id]
                ranked_above = None
            offer: Offer | None = self.offers.entities.get(pair.offer_id)
            if offer is None or offer.version != pair.offer_version:
                continue
            if not financier_fits_bridge(financier, demand, offer, pair.gap):
                continue
            if ranked_above is None:
                if financiers is None:
                    slots = table.live_slots()
                    smaller_id = self.financiers.ids_before(financier.id)[slots]
                    financiers = slots, table.cols["region"][slots], table.cols["country"][slots], smaller_id
                slots, regions, countries, smaller_id = financiers
                own = _near(financier, financier.version, demand)
                nearness_to_buyer = self._nearness(regions, countries, demand.region)
                ranked_above = slots[(nearness_to_buyer > own) | ((nearness_to_buyer == own) & smaller_id)]
            if self._best_financier(demand, offer, pair.gap, among=ranked_above) is None:
                self._gap_pairs.set_hint(pair.row, self._hint(financier, demand))
                out.append(self._offer_pair(demand, offer, financier, pair.score))
        return out

    def _widen_gaps(self, demand_id: str, gap: float) -> None:
        slot = self.buyers.table.slot_of[demand_id]
        cols = self.buyers.table.cols
        low, high = cols["gap_lo"][slot], cols["gap_hi"][slot]
        cols["gap_lo"][slot] = gap if np.isnan(low) else min(low, gap)
        cols["gap_hi"][slot] = gap if np.isnan(high) else max(high, gap)

    def _set_gaps(self, demand_id: str, gaps: FloatArray) -> None:
        slot = self.buyers.table.slot_of[demand_id]
        cols = self.buyers.table.cols
        cols["gap_lo"][slot] = gaps.min() if len(gaps) else NAN
        cols["gap_hi"][slot] = gaps.max() if len(gaps) else NAN

    def _percolate_offer(self, offer: Offer, weights: dict[str, float]) -> list[Candidate]:
        dslots, text_raw, field_scores = self.buyers.on_topic(weights, offer.codes, class_levels=False)
        # Only demands the offer might enter are scored: those bounded at or above their floor (sharing
        # only a class with the offer, looked up for those alone, is bounded at its score meanwhile).
        cols = self.buyers.table.cols
        bound = transaction_score_bounds(
            self._rows(self.buyers, BOUND_COLUMNS, dslots),
            offer.strength,
            text_raw=text_raw,
            field=np.maximum(field_scores, LEVEL_SCORES[2]),
            config=self.config,
        )
        reachable = np.flatnonzero(bound >= np.maximum(self.config.min_score, cols["floor"][dslots]))
        dslots, text_raw = dslots[reachable], text_raw[reachable]
        field_scores = self.buyers.with_class_levels(dslots, field_scores[reachable], offer.codes)
        if not len(dslots):
            return []
        d = self._rows(self.buyers, BUYER_COLUMNS, dslots)
        territory_ok = ~d["has_terr"] | self.buyers.territories_overlap(dslots, territory_words(offer.territories))
        o = _scalars(self._offer_values(offer))
        scores = transaction_scores(
            d, o, territory_ok=territory_ok, text_raw=text_raw, field=field_scores, config=self.config
        )
        rows = np.flatnonzero(scores.ok & (scores.score >= np.maximum(self.config.min_score, d["floor"])))
        out = []
        for row, demand_id in zip(rows.tolist(), self.buyers.ids(dslots[rows]), strict=True):
            demand: Demand = self.buyers.entities[demand_id]
            candidate = self._offer_candidate(demand, offer, scores, row)
            if candidate is not None:
                out.append(candidate)
        return out

    def fresh_fit(self, demand: Demand, offer: Offer) -> OfferFit | None:
        """The parts of a pair this shard scored since the event began, as its scoring computed them;
        None if it did not (the caller scores the pair again). Most matches are explained in the event
        that made them, and scoring a pair again took half the time of an explanation."""
        scored = self._scored.get((demand.id, offer.id))
        return None if scored is None else offer_fit_at(*scored, demand, offer, self.config)

    def forget_scored_pairs(self) -> None:
        """Let go of what :meth:`fresh_fit` reads: each event begins anew, and so does each step of a
        rebuild, which pairs every seeker without an event."""
        self._scored.clear()

    def _offer_candidate(self, demand: Demand, offer: Offer, scores: PairScores, row: int) -> Candidate | None:
        self._scored[(demand.id, offer.id)] = (scores, row)
        score = float(scores.score[row])
        if not scores.gap[row]:
            return self._offer_pair(demand, offer, None, score)
        gap = float(scores.gap_cny[row])
        self._widen_gaps(demand.id, gap)
        financier = self._best_financier(demand, offer, gap)
        self._note_gap_pair(demand, offer, gap, score, financier)
        if financier is None:
            return None
        return self._offer_pair(demand, offer, financier, score)

    def _offer_pair(self, demand: Demand, offer: Offer, financier: Demand | None, score: float) -> Candidate:
        """A transaction, or a bridge when a financier closes the gap; with the offer's codes when the
        demand's field is inferred."""
        weight = inference_weight(demand, self.config)
        return Candidate(
            "transaction" if financier is None else "bridge",
            "demand",
            demand.id,
            demand.version,
            "offer",
            offer.id,
            offer.version,
            None if financier is None else financier.id,
            None if financier is None else financier.version,
            score,
            field_codes=offer.field_codes if weight else NO_CODES,
            inference_weight=weight,
        )

    def _demand_top_k(self, demand: Demand) -> list[Candidate]:
        """The demand's local top K + reserve among the offers on topic with it.

        On a large book most of those offers cannot come near the top (a typical demand shares a busy
        subclass or a common word with nearly half the book), so when there are many, the hard filters
        that read few columns go first (:meth:`_fits_on_few_columns`), and of the offers that pass, only
        the best by :func:`transaction_score_bounds` are scored first. An offer bounded below the last of the
        resulting list cannot enter it; if more offers than were scored could, those are scored too.
        Sharing only a class (field 0.3) is looked up for the scored offers alone and bounded above
        for the others."""
        slots, text_raw, field_scores = self.offers.on_topic(demand.query, demand.codes, class_levels=False)
        d = _scalars(self._buyer_values(demand))
        depth = self.config.depth(inference_weight(demand, self.config) > 0)
        first_share = max(self.score_all_up_to, depth)
        if len(slots) <= first_share:
            return self._rank_offers(demand, d, slots, text_raw, field_scores)
        fitting = np.flatnonzero(self._fits_on_few_columns(demand, d, slots, text_raw, field_scores))
        slots, text_raw, field_scores = slots[fitting], text_raw[fitting], field_scores[fitting]
        if len(slots) <= first_share:
            return self._rank_offers(demand, d, slots, text_raw, field_scores)
        field_bounds = np.maximum(field_scores, LEVEL_SCORES[2]) if demand.codes else field_scores
        strength = self.offers.table.cols["strength"][slots]
        bound = transaction_score_bounds(d, strength, text_raw=text_raw, field=field_bounds, config=self.config)
        first = np.flatnonzero(bound >= np.partition(bound, len(bound) - first_share)[len(bound) - first_share])
        found = self._rank_offers(demand, d, slots[first], text_raw[first], field_scores[first])
        if len(found) < depth:
            contenders = np.flatnonzero(bound >= self.config.min_score)
        else:
            contenders = np.flatnonzero(bound >= found[-1].score)
        if len(contenders) <= len(first):
            # Every offer bounded at or above the threshold is among the first share: all scored.
            return found
        return self._rank_offers(demand, d, slots[contenders], text_raw[contenders], field_scores[contenders])

    def _fits_on_few_columns(
        self, demand: Demand, d: dict[str, Any], slots: IntArray, text_raw: FloatArray, field_scores: FloatArray
    ) -> Any:
        """:func:`fits_on_few_columns`, reading only the columns this demand's settings make matter."""
        cols = self.offers.table.cols
        o: dict[str, Any] = {"deal": cols["deal"][slots], "granted": True, "price": NAN, "rate_known": True}
        if demand.require_granted:
            o["granted"] = cols["granted"][slots]
        if demand.has_budget:
            o["price"], o["rate_known"] = cols["price"][slots], cols["rate_known"][slots]
        fits = fits_on_few_columns(d, o, text_raw=text_raw, field=field_scores, config=self.config)
        if demand.territories:
            fits = fits & self.offers.territories_overlap(slots, territory_words(demand.territories))
        return fits

    def _rank_offers(
        self, demand: Demand, d: dict[str, Any], slots: IntArray, text_raw: FloatArray, field_scores: FloatArray
    ) -> list[Candidate]:
        """Score the given offers for the demand and build its best candidates (resetting the demand's
        gap range and gap pairs to what these offers give). ``field_scores`` lacks the class levels."""
        if not len(slots):
            self._set_gaps(demand.id, _EMPTY)
            self._gap_pairs.drop(demand.id)
            return []
        field_scores = self.offers.with_class_levels(slots, field_scores, demand.codes)
        o = self._rows(self.offers, OFFER_COLUMNS, slots)
        territory_ok: Any = True
        if demand.territories:
            territory_ok = self.offers.territories_overlap(slots, territory_words(demand.territories))
        scores = transaction_scores(
            d, o, territory_ok=territory_ok, text_raw=text_raw, field=field_scores, config=self.config
        )
        eligible = scores.ok & (scores.score >= self.config.min_score)
        self._set_gaps(demand.id, scores.gap_cny[eligible & scores.gap])
        # Rebuilt from the rows ranked below: those _best_first reaches are the ones that matter.
        self._gap_pairs.drop(demand.id)
        rows = np.flatnonzero(eligible)
        ids = self.offers.table.ids
        return self._best_first(
            rows,
            scores.score[rows],
            lambda position: ids[slots[rows[position]]],
            lambda row, offer_id: self._offer_candidate(demand, self.offers.entities[offer_id], scores, row),
            self.config.depth(inference_weight(demand, self.config) > 0),
        )

    def _best_first(
        self, rows: IntArray, scores: Any, id_at: Callable[[int], Any], make: Any, depth: int
    ) -> list[Candidate]:
        """The first ``depth`` candidates in rank order (score, then id), building only as many as
        needed (a bridge row without a fitting financier builds nothing and the next row moves up)."""
        out: list[Candidate] = []
        for position, entity_id in _rank_order(scores, id_at):
            if len(out) >= depth:
                break
            candidate = make(int(rows[position]), entity_id)
            if candidate is not None:
                out.append(candidate)
        return out

    # ---- financing -------------------------------------------------------------------------------
    def _percolate_financier(self, financier: Demand) -> list[Candidate]:
        slots = self.requests.table.live_slots()
        f = _scalars(self._financier_values(financier))
        few = self._rows(self.requests, REQUEST_FILTER_COLUMNS, slots)
        slots = slots[financing_fits_on_few_columns(few, f)]
        if not len(slots):
            return []
        text_raw, field_scores = self.requests.relevance(slots, financier.query, financier.codes)
        r = self._rows(self.requests, REQUEST_COLUMNS, slots)
        territory_ok: Any = True
        if financier.territories:
            territory_ok = self.requests.territories_overlap(slots, territory_words(financier.territories))
        scores = financing_scores(
            r,
            f,
            territory_ok=territory_ok,
            served_ok=self._parties_served_by(financier, r["region"], r["country"]),
            text_raw=text_raw,
            field=field_scores,
            config=self.config,
        )
        rows = np.flatnonzero(scores.ok & (scores.score >= np.maximum(self.config.min_score, r["floor"])))
        return [
            self._financing_candidate(self.requests.entities[request_id], financier, float(scores.score[row]))
            for row, request_id in zip(rows.tolist(), self.requests.ids(slots[rows]), strict=True)
        ]

    def _parties_served_by(self, financier: Demand, regions: IntArray, countries: IntArray) -> npt.NDArray[np.bool_]:
        """:func:`matcher.financing.served` for many parties at once, from their interned regions and
        countries (a served code is a region or a whole country; they share one interner)."""
        if financier.intent != "lend" or not financier.regions_served:
            return np.ones(len(regions), dtype=bool)
        codes = [self._ids.get(code) for code in sorted(financier.regions_served)]
        return np.isin(regions, codes) | np.isin(countries, codes)

    def _financing_candidate(self, collateral: Collateral, financier: Demand, score: float) -> Candidate:
        r = collateral.request
        return Candidate(
            "financing", "financing", r.id, r.version, "demand", financier.id, financier.version, None, None, score
        )

    def _request_top_k(self, collateral: Collateral) -> list[Candidate]:
        slots = self.financiers.table.live_slots()
        intent = LEND if INTENT_FOR[collateral.request.instrument] == "lend" else INVEST
        slots = slots[self.financiers.table.cols["intent"][slots] == intent]
        if not len(slots):
            return []
        weights = self._doc_weights(collateral.terms, collateral.doc_len)
        text_raw, field_scores = self.financiers.relevance(slots, weights, collateral.codes)
        f = self._rows(self.financiers, FINANCIER_COLUMNS, slots)
        territory_ok = ~f["has_terr"] | self.financiers.territories_overlap(
            slots, territory_words(collateral.territories)
        )
        served_ok = self._financiers_serving(slots, collateral.request.region)
        ids = self.financiers.table.ids
        r = _scalars(self._request_values(collateral))
        scores = financing_scores(
            r,
            f,
            territory_ok=territory_ok,
            served_ok=served_ok,
            text_raw=text_raw,
            field=field_scores,
            config=self.config,
        )
        rows = np.flatnonzero(scores.ok & (scores.score >= self.config.min_score))
        return self._best_first(
            rows,
            scores.score[rows],
            lambda position: ids[slots[rows[position]]],
            lambda row, fid: self._financing_candidate(
                collateral, self.financiers.entities[fid], float(scores.score[row])
            ),
            self.config.depth(False),
        )

    # ---- queries from the merger ------------------------------------------------------------------
    def set_floor(self, seeker: SeekerKey, score: float) -> None:
        """The score a new candidate must reach to enter this seeker's view (0 while it has room):
        percolation skips the rest, so an offer on a busy topic does not build thousands of candidates."""
        kind, seeker_id = seeker
        table = self.buyers.table if kind == "demand" else self.requests.table
        slot = table.slot_of.get(seeker_id)
        if slot is not None:
            table.cols["floor"][slot] = score

    def local_top_k(self, seeker: SeekerKey) -> list[Candidate]:
        kind, seeker_id = seeker
        if kind == "demand":
            demand = self.buyers.entities.get(seeker_id)
            return [] if demand is None else self._demand_top_k(demand)
        if not self.answers_financing:
            return []
        collateral = self.requests.entities.get(seeker_id)
        return [] if collateral is None else self._request_top_k(collateral)

    def entity(self, kind: str, entity_id: str) -> Any:
        """The open entity (a :class:`Collateral` for a financing request) held here, or None."""
        if kind == "offer":
            return self.offers.entities.get(entity_id)
        if kind == "financing":
            return self.requests.entities.get(entity_id)
        return self.buyers.entities.get(entity_id) or self.financiers.entities.get(entity_id)

    def sizes(self) -> dict[str, int]:
        return {
            "offers": len(self.offers),
            "buyer_demands": len(self.buyers),
            "financier_demands": len(self.financiers),
            "financing_requests": len(self.requests) + len(self.pending),
        }


def _near(financier: Demand | None, version: int, buyer: Demand) -> int:
    """2 in the buyer's region, 1 in its country, 0 elsewhere; -1 for a financier no longer open in
    that version (it ranks below any)."""
    if financier is None or financier.version != version:
        return -1
    if financier.region == buyer.region:
        return 2
    return 1 if financier.region[:2] == buyer.region[:2] else 0


def _scalars(values: dict[str, Any]) -> dict[str, Any]:
    """One entity's column values as numpy scalars, to broadcast against many candidates' columns."""
    return {name: np.asarray(value) for name, value in values.items()}


def _rank_order(scores: Any, id_at: Callable[[int], str]) -> Iterator[tuple[int, str]]:
    """(position, id) by best score first, equal scores by id; lazily: ids are read, and ties sorted,
    only as far as the caller iterates."""
    if len(scores) <= 256:
        keyed = sorted((-scores[i], id_at(i), i) for i in range(len(scores)))
        yield from ((i, entity_id) for _, entity_id, i in keyed)
        return
    # Most callers stop after K + reserve: rank the best few hundred first, the rest only if needed.
    threshold = np.partition(scores, len(scores) - 256)[len(scores) - 256]
    head = np.flatnonzero(scores >= threshold)
    tail = np.flatnonzero(scores < threshold)
    for part in (head, tail):
        by_score = part[np.argsort(-scores[part], kind="stable")].tolist()
        start = 0
        while start < len(by_score):
            end = start
            while end < len(by_score) and scores[by_score[end]] == scores[by_score[start]]:
                end += 1
            yield from sorted(((i, id_at(i)) for i in by_score[start:end]), key=lambda pair: pair[1])
            start = end


_EMPTY: FloatArray = np.zeros(0)
