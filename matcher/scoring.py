"""What a match *means*, one pair at a time: the hard filters and the score components of DESIGN.md.

These scalar functions are the definition. The engine computes the same numbers vectorised over many
candidates at once (``matcher/shard.py``); the brute-force oracle uses these, and so do explanations
of pairs the event being applied did not score (those it did read the parts its scoring computed).

Choices where DESIGN.md is silent, made once here:
- *field*: a demand code that contains the patent's code (``H01M`` ⊇ ``H01M 10/0525``) scores 1.0 — the
  buyer asked for the whole subclass; otherwise the deepest shared level scores as the table says.
- a pair must be *on topic*: field ≥ 0.6 (same subclass or deeper) or text ≥ ``TOPICAL_TEXT``;
  otherwise price, region and freshness alone would match unrelated listings.
- components that do not apply (field without demand codes, price without a budget) are left out and
  the score divides by the weights that do apply. A demand without codes gets its field part back when
  its open matches are ranked, inferred from its best candidates (``matcher/inference.py``): it is not
  a function of one pair, so it is not here.
- time-dependent parts are judged at the pair's meeting time, the later of the two ``occurred_at``s,
  so a score never changes while neither side does.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from matcher.config import MatchingConfig, Weights
from matcher.entities import SECONDS_PER_YEAR, Demand, Offer, decay
from matcher.ipc import LEVEL_SCORES, levels
from matcher.text import query_norm, saturate

__all__ = [
    "TOPICAL_FIELD",
    "TOPICAL_TEXT",
    "Components",
    "OfferFit",
    "combine",
    "field_score",
    "financier_fits_bridge",
    "financier_rank",
    "offer_components",
    "offer_fit",
    "region_score",
    "round_score",
    "text_score",
]

TOPICAL_FIELD = 0.6
TOPICAL_TEXT = 0.3


_FIELD_PAIRS_KEPT = 262144
"""Pairs the cache of :func:`field_pair` holds at most; past that it starts again (codes come from
outside, and any well-formed code is accepted)."""
_field_pairs: dict[str, dict[str, float]] = {}
_field_pairs_held = 0


def field_pair(demand_code: str, patent_code: str) -> float:
    """Cached: the codes of a book come from a few thousand IPC groups, and explanations and the
    percolation of financiers ask for the same pairs again and again. Cached per demand code, in dicts
    of strings and floats, which the cyclic collector never tracks: a cache keyed by tuples of two
    codes is tracked again at each new pair and walked whole by the young collections (see
    :class:`~matcher.book.Book`)."""
    global _field_pairs_held
    pairs = _field_pairs.get(demand_code)
    if pairs is not None:
        score = pairs.get(patent_code)
        if score is not None:
            return score
    if _field_pairs_held >= _FIELD_PAIRS_KEPT:
        _field_pairs.clear()
        _field_pairs_held = 0
        pairs = None
    if pairs is None:
        pairs = _field_pairs[demand_code] = {}
    score = pairs[patent_code] = _field_pair(demand_code, patent_code)
    _field_pairs_held += 1
    return score


def _field_pair(demand_code: str, patent_code: str) -> float:
    wanted, have = levels(demand_code), levels(patent_code)
    if wanted[-1] in have:
        return 1.0
    shared = 0
    for a, b in zip(wanted, have, strict=False):
        if a != b:
            break
        shared += 1
    return LEVEL_SCORES[shared]


def field_score(demand_codes: Iterable[str], patent_codes: Iterable[str]) -> float:
    patent_codes = tuple(patent_codes)
    return max((field_pair(d, p) for d in demand_codes for p in patent_codes), default=0.0)


def matched_codes(demand_codes: Collection[str], patent_codes: Collection[str], best: float | None = None) -> list[str]:
    """The patent codes that reach the best field score (for the explanation). ``best``: that score,
    exactly :func:`field_score` of the two, when the caller has it (a fit's field part: both paths
    give one of the constants of ``LEVEL_SCORES``)."""
    if best is None:
        best = field_score(demand_codes, patent_codes)
    if not best:
        return []
    return sorted({p for d in demand_codes for p in patent_codes if field_pair(d, p) == best})


def text_score(query: Mapping[str, float], terms: Mapping[str, int], doc_len: int, config: MatchingConfig) -> float:
    """sqrt of the weighted share of the query found in the document (measured against
    :func:`~matcher.text.query_norm`, capped at 1), each found term saturated by BM25's tf curve with a
    fixed average length. In [0, 1]; a function of the two texts alone."""
    total = query_norm(query)
    if total <= 0:
        return 0.0
    found = 0.0
    for term, weight in query.items():
        tf = terms.get(term)
        if tf:
            found += weight * saturate(tf, doc_len, k1=config.bm25_k1, b=config.bm25_b, avg_len=config.bm25_avg_doc_len)
    return math.sqrt(min(1.0, found / total))


def matched_terms(query: Mapping[str, float], terms: Iterable[str], limit: int = 8) -> list[str]:
    """The document's ``terms`` (counts or keys alone) the query weighs most, at most ``limit``."""
    return sorted(query.keys() & terms, key=lambda t: (-query[t], t))[:limit]


def region_score(a: str, b: str) -> float:
    if a == b:
        return 1.0
    return 0.5 if a[:2] == b[:2] else 0.0


@dataclass(frozen=True, slots=True)
class Components:
    """Score parts in [0, 1]; None where a part does not apply to the pair."""

    field: float | None
    text: float | None
    price: float | None
    strength: float
    region: float
    freshness: float

    def as_dict(self) -> dict[str, float]:
        parts = {
            "field": self.field,
            "text": self.text,
            "price": self.price,
            "strength": self.strength,
            "region": self.region,
            "freshness": self.freshness,
        }
        return {name: round_score(value) for name, value in parts.items() if value is not None}


def combine(parts: Components, weights: Weights) -> float:
    """Weighted mean over the parts that apply, rounded so every path agrees on ties and thresholds."""
    total = weighted = 0.0
    for name in ("field", "text", "price", "strength", "region", "freshness"):
        value = getattr(parts, name)
        if value is not None:
            weight = getattr(weights, name)
            total += weight
            weighted += weight * value
    return round_score(weighted / total) if total > 0 else 0.0


def round_score(value: float) -> float:
    """Six decimals, by the same arithmetic as the vectorised path (so both agree bit for bit)."""
    return math.floor(value * 1e6 + 0.5) / 1e6


@dataclass(frozen=True, slots=True)
class OfferFit:
    """An offer that passes every hard filter of a buyer demand except, possibly, the price.

    ``gap_cny`` is None when the price fits (a transaction); otherwise the amount above the budget that
    a financier would have to bridge (asking within budget × (1 + stretch))."""

    parts: Components
    gap_cny: float | None


def offer_fit(d: Demand, o: Offer, config: MatchingConfig) -> OfferFit | None:
    """Hard filters and components of a buyer demand against an offer; None if it can never match."""
    if d.is_financier or d.party == o.party or not (d.deal_mask & o.deal_mask):
        return None
    if d.territories and not (d.territories & o.territories):
        return None
    if d.require_granted and not o.all_granted:
        return None
    meet_ts = max(d.ts, o.ts)
    if d.min_remaining_years is not None and (o.min_expiry_ts - meet_ts) / SECONDS_PER_YEAR < d.min_remaining_years:
        return None
    field = field_score(d.codes, o.codes) if d.codes else None
    text = text_score(d.query, o.terms, o.doc_len, config)
    if (field or 0.0) < TOPICAL_FIELD and text < TOPICAL_TEXT:
        return None
    price: float | None = None
    gap: float | None = None
    if d.has_budget:
        if not d.budget_rate_known or not o.rate_known:
            return None
        assert d.budget_max_cny is not None
        if o.price_cny is None:
            price = config.negotiable_price_score
        elif o.price_cny <= d.budget_max_cny:
            price = 1.0
        elif o.price_cny <= d.budget_max_cny * (1 + config.price_tolerance):
            over = o.price_cny / d.budget_max_cny - 1
            price = 1.0 - over / config.price_tolerance
        elif config.bridge_stretch and o.price_cny <= d.budget_max_cny * (1 + config.bridge_stretch):
            price = config.bridge_price_score
            gap = o.price_cny - d.budget_max_cny
        else:
            return None
    return OfferFit(offer_components(d, o, field=field, text=text, price=price, config=config), gap)


def offer_components(
    d: Demand, o: Offer, *, field: float | None, text: float, price: float | None, config: MatchingConfig
) -> Components:
    """The components of a pair, given the parts that need scoring: strength, region and freshness
    follow from the two sides (for :func:`offer_fit`, and for the parts the vectorised path computed)."""
    return Components(
        field=field,
        text=text,
        price=price,
        strength=o.strength,
        region=region_score(d.region, o.region),
        freshness=decay((d.ts - o.ts) / 86400.0, config.freshness_half_life_days),
    )


def financier_fits_bridge(f: Demand, buyer: Demand, o: Offer, gap_cny: float) -> bool:
    """Can lender / investor ``f`` finance the ``gap_cny`` between ``buyer``'s budget and ``o``'s price?"""
    if not f.is_financier or f.party in (buyer.party, o.party) or not f.budget_rate_known:
        return False
    assert f.budget_max_cny is not None
    if gap_cny > f.budget_max_cny or (f.budget_min_cny is not None and gap_cny < f.budget_min_cny):
        return False
    if f.territories and not (f.territories & o.territories):
        return False
    if f.require_granted and not o.all_granted:
        return False
    if f.intent == "lend":
        if f.regions_served and not (buyer.region in f.regions_served or buyer.region[:2] in f.regions_served):
            return False
        if f.max_ltv is not None and (o.value_cny is None or gap_cny / o.value_cny > f.max_ltv):
            return False
    return True


def financier_rank(f: Demand, buyer: Demand) -> tuple[float, str]:
    """Among financiers that fit, prefer one near the buyer, then the smallest id (deterministic)."""
    return (-region_score(f.region, buyer.region), f.id)
