"""The brute-force oracle: what the open matches must be after a log, computed the slow, obvious way.

It uses none of the engine's machinery — no book, no indexes, no views, no vectorised scoring,
nothing incremental: the final book is read straight off the log (highest version per entity; open if active
and not expired at the final watermark), every pair is scored with the scalar definitions of
:mod:`matcher.scoring`, and each seeker keeps its top K (the best K of its pool by the score with its
inferred field, :mod:`matcher.inference`, when it names no IPC codes). (It shares the conversion of an
event into a record and the registry rule for collateral, which are definitions, not machinery.)
Tests compare the engine — and, through ``fold``, the service's output topic — against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from matcher.book import kind_of
from matcher.candidates import Candidate
from matcher.config import MatchingConfig
from matcher.engine import entity_from_event
from matcher.entities import Demand, Offer, Request
from matcher.financing import Registry, financing_fit, resolve
from matcher.inference import inference_weight, open_ranking
from matcher.ipc import NO_CODES
from matcher.scoring import combine, financier_fits_bridge, financier_rank, offer_fit
from matcher.text import TextAnalyzer, default_analyzer
from schemas import InputEvent, entity_id

__all__ = ["FinalBook", "final_book", "final_log", "fold", "oracle_matches"]


@dataclass(frozen=True)
class FinalBook:
    offers: list[Offer]
    buyers: list[Demand]
    financiers: list[Demand]
    requests: list[Request]


def final_book(events: Iterable[InputEvent], analyzer: TextAnalyzer, config: MatchingConfig) -> FinalBook:
    latest: dict[tuple[str, str], tuple[int, InputEvent]] = {}
    watermark = float("-inf")
    for event in events:
        entity = entity_from_event(event, analyzer, config)
        watermark = max(watermark, entity.ts)
        key = (kind_of(entity), entity.id)
        if key not in latest or entity.version > latest[key][0]:
            latest[key] = (entity.version, event)
    open_entities = []
    for _, event in latest.values():
        entity = entity_from_event(event, analyzer, config)
        if event.status == "active" and (entity.expires_ts is None or entity.expires_ts > watermark):
            open_entities.append(entity)
    demands = [e for e in open_entities if isinstance(e, Demand)]
    return FinalBook(
        offers=[e for e in open_entities if isinstance(e, Offer)],
        buyers=[d for d in demands if not d.is_financier],
        financiers=[d for d in demands if d.is_financier],
        requests=[e for e in open_entities if isinstance(e, Request)],
    )


def final_log(events: Iterable[InputEvent]) -> list[InputEvent]:
    """The few events of a log that its final book is made of: the event of each open entity (its first
    at its highest version), and one event at the latest ``occurred_at``, the final watermark that
    judges expiry (with its entity's latest event, should it be a stale one). :func:`final_book` of
    them is :func:`final_book` of the whole log, so a churning log of a million events reaches the
    oracle as the thousands its final book holds. Reads ``events`` once, lazily, converting none."""
    latest: dict[tuple[str, str], InputEvent] = {}
    last: InputEvent | None = None
    for event in events:
        key = (type(event).__name__, entity_id(event))
        held = latest.get(key)
        if held is None or event.version > held.version:
            latest[key] = event
        if last is None or event.occurred_at > last.occurred_at:
            last = event
    if last is None:
        return []
    watermark = last.occurred_at.timestamp()
    kept = [
        event
        for event in latest.values()
        if event.status == "active" and (event.expires_at is None or event.expires_at.timestamp() > watermark)
    ]
    ends_as = latest[(type(last).__name__, entity_id(last))]  # the watermark's entity, should `last` be stale
    for event in (ends_as, last):
        if all(event is not k for k in kept):
            kept.append(event)
    return kept


def oracle_matches(
    events: Iterable[InputEvent],
    config: MatchingConfig | None = None,
    analyzer: TextAnalyzer | None = None,
    share: tuple[int, int] = (0, 1),
) -> dict[str, Candidate]:
    """Every seeker's top K in the final book of ``events``, by match id.

    ``share=(i, n)`` answers for the i-th of n disjoint shares of the seekers only, so that n
    processes can compute the oracle together: the union of the n answers is the whole oracle."""
    config = config or MatchingConfig()
    index, count = share
    book = final_book(events, analyzer or default_analyzer(), config)
    out: dict[str, Candidate] = {}
    for demand in book.buyers[index::count]:
        found = []
        weight = inference_weight(demand, config)
        for offer in book.offers:
            codes = offer.field_codes if weight else NO_CODES
            fit = offer_fit(demand, offer, config)
            if fit is None:
                continue
            score = combine(fit.parts, config.weights)
            if score < config.min_score:
                continue
            if fit.gap_cny is None:
                found.append(Candidate("transaction", "demand", demand.id, demand.version, "offer", offer.id,
                                       offer.version, None, None, score, field_codes=codes,
                                       inference_weight=weight))  # fmt: skip
                continue
            gap = fit.gap_cny
            fitting = [f for f in book.financiers if financier_fits_bridge(f, demand, offer, gap)]
            if fitting:
                best = min(fitting, key=lambda f: financier_rank(f, demand))
                found.append(Candidate("bridge", "demand", demand.id, demand.version, "offer", offer.id,
                                       offer.version, best.id, best.version, score, field_codes=codes,
                                       inference_weight=weight))  # fmt: skip
        ranked = open_ranking(sorted(found, key=lambda c: c.order)[: config.ranked_depth(weight > 0)], config)
        out.update((c.match_id, c) for c in ranked)

    registry = Registry()
    for offer in book.offers:
        registry.add(offer)
    for request in book.requests[index::count]:
        collateral = resolve(request, registry, analyzer or default_analyzer())
        if collateral is None:
            continue
        found = []
        for lender in book.financiers:
            parts = financing_fit(collateral, lender, config)
            if parts is None:
                continue
            score = combine(parts, config.weights)
            if score >= config.min_score:
                found.append(Candidate("financing", "financing", request.id, request.version, "demand", lender.id,
                                       lender.version, None, None, score))  # fmt: skip
        out.update((c.match_id, c) for c in sorted(found, key=lambda c: c.order)[: config.top_k])
    return out


def fold(match_events: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The open matches of an output log: the last event per match id, kept if it is a ``match``."""
    state: dict[str, Mapping[str, Any]] = {}
    for event in match_events:
        if event["type"] == "match":
            state[event["match_id"]] = event
        else:
            state.pop(event["match_id"], None)
    return state
