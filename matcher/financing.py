"""Financing: the patent registry, collateral completion, and what makes a lender or investor fit a
financing request (the scalar definition; :mod:`matcher.vector` computes it for many at once)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from matcher.config import MatchingConfig
from matcher.entities import Demand, Offer, PatentFacts, Request, decay
from matcher.scoring import TOPICAL_FIELD, TOPICAL_TEXT, Components, field_score, region_score, text_score
from matcher.text import TextAnalyzer

__all__ = ["INTENT_FOR", "Collateral", "Registry", "financing_fit", "resolve"]

INTENT_FOR = {"pledge_loan": "lend", "equity": "invest"}


class Registry:
    """Patent number → the patent as described by an open offer (the smallest offer id when several
    open offers carry the same patent), so that collateral named by number can be completed."""

    def __init__(self) -> None:
        # Almost every number is carried by one offer: a (offer id, patent) pair, a dict only when shared.
        self._by_number: dict[str, tuple[str, PatentFacts] | dict[str, PatentFacts]] = {}

    def get(self, number: str) -> PatentFacts | None:
        entry = self._by_number.get(number)
        if entry is None:
            return None
        return entry[1] if isinstance(entry, tuple) else entry[min(entry)]

    def add(self, offer: Offer) -> set[str]:
        """Record an open offer's patents; returns the numbers whose registry entry changed."""
        changed = set()
        for patent in offer.patents:
            before = self.get(patent.number)
            entry = self._by_number.get(patent.number)
            if entry is None or (isinstance(entry, tuple) and entry[0] == offer.id):
                self._by_number[patent.number] = (offer.id, patent)
            elif isinstance(entry, tuple):
                self._by_number[patent.number] = {entry[0]: entry[1], offer.id: patent}
            else:
                entry[offer.id] = patent
            if self.get(patent.number) is not before:
                changed.add(patent.number)
        return changed

    def remove(self, offer: Offer) -> set[str]:
        changed = set()
        for patent in offer.patents:
            before = self.get(patent.number)
            entry = self._by_number.get(patent.number)
            if isinstance(entry, tuple) and entry[0] == offer.id:
                del self._by_number[patent.number]
            elif isinstance(entry, dict):
                entry.pop(offer.id, None)
                if len(entry) == 1:
                    self._by_number[patent.number] = next(iter(entry.items()))
            if self.get(patent.number) is not before:
                changed.add(patent.number)
        return changed


@dataclass(frozen=True, slots=True)
class Collateral:
    """A financing request with every collateral patent known: what lenders are matched against."""

    request: Request
    patents: tuple[PatentFacts, ...]
    terms: Mapping[str, int]
    doc_len: int
    codes: tuple[str, ...]
    value_cny: float | None
    all_granted: bool
    territories: frozenset[str]
    strength: float


def resolve(request: Request, registry: Registry, analyzer: TextAnalyzer) -> Collateral | None:
    """Complete the collateral from the request itself and the registry; None while any is unknown."""
    patents = []
    for number in request.collateral_numbers:
        patent = request.inline.get(number) or registry.get(number)
        if patent is None:
            return None
        patents.append(patent)
    terms = Counter(t for p in patents for t in p.tokens)
    terms.update(analyzer.tokens(request.purpose))
    values = [p.appraised_cny for p in patents if p.appraised_cny is not None]
    return Collateral(
        request=request,
        patents=tuple(patents),
        terms=dict(terms),
        doc_len=sum(terms.values()),
        codes=tuple(dict.fromkeys(c for p in patents for c in p.codes)),
        value_cny=sum(values) if values else None,
        all_granted=all(p.granted for p in patents),
        territories=frozenset(p.territory for p in patents),
        strength=max(p.strength(request.ts) for p in patents),
    )


def served(f: Demand, region: str) -> bool:
    """Does lender ``f`` serve a party in ``region`` (by region code, or by the whole country)?"""
    return f.intent != "lend" or not f.regions_served or region in f.regions_served or region[:2] in f.regions_served


def financing_fit(c: Collateral, f: Demand, config: MatchingConfig) -> Components | None:
    """Hard filters and components of a lender / investor demand against a financing request."""
    r = c.request
    if f.intent != INTENT_FOR[r.instrument] or f.party == r.party:
        return None
    if f.territories and not (f.territories & c.territories):
        return None
    if not served(f, r.region):
        return None
    if r.amount_cny is None or not f.budget_rate_known or f.budget_max_cny is None:
        return None
    if r.amount_cny > f.budget_max_cny or r.amount_cny < (f.budget_min_cny or 0.0):
        return None
    ltv: float | None = None if c.value_cny is None else r.amount_cny / c.value_cny
    limits_ltv = f.intent == "lend" and f.max_ltv is not None
    if limits_ltv and (ltv is None or f.max_ltv is None or ltv > f.max_ltv):
        return None
    if f.require_granted and not c.all_granted:
        return None
    field = field_score(f.codes, c.codes) if f.codes else None
    text = text_score(f.query, c.terms, c.doc_len, config)
    if f.codes and (field or 0.0) < TOPICAL_FIELD and text < TOPICAL_TEXT:
        return None
    has_topic = bool(f.codes) or bool(f.query and f.has_keywords)
    price = 1.0 - 0.5 * (ltv / f.max_ltv) if limits_ltv and ltv is not None and f.max_ltv else 1.0
    return Components(
        field=field,
        text=text if has_topic else None,
        price=price,
        strength=c.strength,
        region=region_score(r.region, f.region),
        freshness=decay((r.ts - f.ts) / 86400.0, config.freshness_half_life_days),
    )
