"""What the engine keeps of each event: compact, frozen records with everything matching needs
precomputed once (money in yuan, deal-type bits, IPC levels, term counts, strength), and nothing else —
no abstracts, no raw payloads."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from matcher.config import MatchingConfig
from matcher.ipc import FieldCodes, field_codes
from matcher.text import TextAnalyzer, language_of, log_scale
from schemas import BuyerDemand, CollateralRef, FinancingRequest, Money, Patent, PatentOffer

__all__ = [
    "ASSIGNMENT",
    "LICENSES",
    "Demand",
    "Offer",
    "PatentFacts",
    "Request",
    "demand_from_event",
    "offer_from_event",
    "request_from_event",
]

DEAL_BITS = {"assignment": 1, "exclusive_license": 2, "sole_license": 4, "non_exclusive_license": 8}
ASSIGNMENT = 1
LICENSES = 2 | 4 | 8
_TERM_YEARS = {"invention": 20, "utility_model": 10, "design": 15}
SECONDS_PER_YEAR = 365.25 * 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

EntityKind = Literal["offer", "demand", "financing"]


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


def _money_cny(money: Money | None, config: MatchingConfig) -> float | None:
    return None if money is None else config.to_cny(float(money.amount), money.currency)


def _expiry(patent: Patent) -> date:
    """The stated expiry, else the statutory term from filing (20 / 10 / 15 years by kind)."""
    if patent.expiry_date is not None:
        return patent.expiry_date
    filed = patent.filing_date
    years = _TERM_YEARS[patent.kind]
    if filed.month == 2 and filed.day == 29:
        return date(filed.year + years, 3, 1)
    return filed.replace(year=filed.year + years)


def _day_ts(day: date) -> float:
    return (day.toordinal() - _EPOCH_ORDINAL) * 86400.0


@dataclass(frozen=True, slots=True)
class PatentFacts:
    """A patent as matching sees it."""

    number: str
    title: str
    tokens: tuple[str, ...]
    """Terms of the title and abstract, in order (the text itself is not kept)."""
    codes: tuple[str, ...]
    granted: bool
    kind: str
    expiry_ts: float
    appraised_cny: float | None
    static_strength: tuple[float, float, float, float]

    @property
    def territory(self) -> str:
        return self.number[:2]

    def strength(self, as_of_ts: float) -> float:
        """Patent value index in [0, 1]: legal standing, remaining term, claims, family, citations."""
        standing, claims, family, citations = self.static_strength
        remaining = max(0.0, (self.expiry_ts - as_of_ts) / SECONDS_PER_YEAR)
        return 0.35 * standing + 0.25 * min(1.0, remaining / 15.0) + 0.15 * claims + 0.15 * family + 0.10 * citations


def patent_facts(patent: Patent, analyzer: TextAnalyzer, config: MatchingConfig) -> PatentFacts:
    granted = patent.legal_status == "granted"
    if patent.legal_status in ("expired", "invalidated"):
        standing = 0.0
    elif patent.kind == "invention":
        standing = 1.0 if granted else 0.5
    else:
        standing = 0.5 if granted else 0.2
    return PatentFacts(
        number=patent.number,
        title=patent.title,
        tokens=tuple(analyzer.tokens(f"{patent.title}\n{patent.abstract or ''}")),
        codes=tuple(dict.fromkeys(patent.ipc)),
        granted=granted,
        kind=patent.kind,
        expiry_ts=_day_ts(_expiry(patent)),
        appraised_cny=_money_cny(patent.appraised_value, config),
        static_strength=(
            standing,
            min(1.0, (patent.claims_count or 0) / 20.0),
            log_scale(patent.family_size or 1, 10) if patent.family_size else 0.0,
            log_scale(patent.forward_citations or 0, 50),
        ),
    )


@dataclass(frozen=True, slots=True)
class Offer:
    id: str
    version: int
    event_id: str
    ts: float
    expires_ts: float | None
    party: str
    region: str
    deal_mask: int
    asking_price: tuple[Decimal, str] | None
    price_cny: float | None
    """Asking price in yuan; None when negotiable."""
    rate_known: bool
    """False when the asking price's currency has no rate: such an offer cannot pass a budget."""
    territories: frozenset[str]
    all_granted: bool
    min_expiry_ts: float
    strength: float
    codes: tuple[str, ...]
    field_codes: FieldCodes
    """``codes`` with what ranking an inferred field reads of them."""
    term_keys: tuple[str, ...]
    term_counts: tuple[int, ...]
    doc_len: int
    value_cny: float | None
    patents: tuple[PatentFacts, ...]
    language: str

    @property
    def terms(self) -> dict[str, int]:
        """Term counts of titles, abstracts and keywords (kept as two tuples: a dict per offer costs more)."""
        return dict(zip(self.term_keys, self.term_counts, strict=True))


@dataclass(frozen=True, slots=True)
class Demand:
    id: str
    version: int
    event_id: str
    ts: float
    expires_ts: float | None
    party: str
    region: str
    intent: str
    deal_mask: int
    budget_min_cny: float | None
    budget_max_cny: float | None
    has_budget: bool
    budget_rate_known: bool
    budget_max: Money | None
    territories: frozenset[str]
    require_granted: bool
    min_remaining_years: float | None
    regions_served: frozenset[str]
    max_ltv: float | None
    codes: tuple[str, ...]
    query: Mapping[str, float]
    has_keywords: bool
    language: str

    @property
    def is_financier(self) -> bool:
        return self.intent in ("lend", "invest")


@dataclass(frozen=True, slots=True)
class Request:
    id: str
    version: int
    event_id: str
    ts: float
    expires_ts: float | None
    party: str
    region: str
    instrument: str
    amount: Money
    amount_cny: float | None
    collateral_numbers: tuple[str, ...]
    inline: Mapping[str, PatentFacts]
    purpose: str
    language: str

    @property
    def wanted_numbers(self) -> tuple[str, ...]:
        """Collateral numbers the request names without details: completed from the registry."""
        return tuple(n for n in self.collateral_numbers if n not in self.inline)


def _ts_or_none(moment: datetime | None) -> float | None:
    return None if moment is None else _timestamp(moment)


def offer_from_event(event: PatentOffer, analyzer: TextAnalyzer, config: MatchingConfig) -> Offer:
    patents = tuple(patent_facts(p, analyzer, config) for p in event.patents)
    terms = Counter(t for p in patents for t in p.tokens)
    terms.update(analyzer.term_counts([*event.keywords, *event.industries]))
    price_cny = _money_cny(event.asking_price, config)
    values = [p.appraised_cny for p in patents if p.appraised_cny is not None]
    ts = _timestamp(event.occurred_at)
    codes = tuple(dict.fromkeys(c for p in patents for c in p.codes))
    return Offer(
        id=event.offer_id,
        version=event.version,
        event_id=event.event_id,
        ts=ts,
        expires_ts=_ts_or_none(event.expires_at),
        party=event.seller.party_id,
        region=event.seller.region,
        deal_mask=sum(DEAL_BITS[d] for d in set(event.deal_types)),
        asking_price=None if event.asking_price is None else (event.asking_price.amount, event.asking_price.currency),
        price_cny=price_cny,
        rate_known=event.asking_price is None or price_cny is not None,
        territories=frozenset(p.territory for p in patents),
        all_granted=all(p.granted for p in patents),
        min_expiry_ts=min(p.expiry_ts for p in patents),
        strength=max(p.strength(ts) for p in patents),
        codes=codes,
        field_codes=field_codes(codes),
        term_keys=tuple(terms),
        term_counts=tuple(terms.values()),
        doc_len=sum(terms.values()),
        value_cny=sum(values) if values else None,
        patents=patents,
        language=language_of(" ".join(p.title for p in patents)),
    )


def demand_from_event(event: BuyerDemand, analyzer: TextAnalyzer, config: MatchingConfig) -> Demand:
    if event.deal_types:
        deal_mask = sum(DEAL_BITS[d] for d in set(event.deal_types))
    else:
        deal_mask = {"acquire": ASSIGNMENT, "license": LICENSES}.get(event.intent, 0)
    budget = event.budget
    budget_max = None if budget is None else config.to_cny(float(budget.max), budget.currency)
    budget_min = None
    if budget is not None and budget.min is not None:
        budget_min = config.to_cny(float(budget.min), budget.currency)
    return Demand(
        id=event.demand_id,
        version=event.version,
        event_id=event.event_id,
        ts=_timestamp(event.occurred_at),
        expires_ts=_ts_or_none(event.expires_at),
        party=event.buyer.party_id,
        region=event.buyer.region,
        intent=event.intent,
        deal_mask=deal_mask,
        budget_min_cny=budget_min,
        budget_max_cny=budget_max,
        has_budget=budget is not None,
        budget_rate_known=budget is None or budget_max is not None,
        budget_max=None if budget is None else Money(amount=budget.max, currency=budget.currency),
        territories=frozenset(event.territories),
        require_granted=event.require_granted,
        min_remaining_years=None if event.min_remaining_years is None else float(event.min_remaining_years),
        regions_served=frozenset(event.regions_served),
        max_ltv=None if event.max_loan_to_value is None else float(event.max_loan_to_value),
        codes=tuple(dict.fromkeys(event.ipc)),
        query=analyzer.query_weights([event.description], boosted=event.keywords),
        has_keywords=bool(event.keywords),
        language=language_of(event.description),
    )


def request_from_event(event: FinancingRequest, analyzer: TextAnalyzer, config: MatchingConfig) -> Request:
    inline = {c.number: patent_facts(c, analyzer, config) for c in event.collateral if isinstance(c, Patent)}
    numbers = tuple(dict.fromkeys(c.number for c in event.collateral if isinstance(c, (Patent, CollateralRef))))
    return Request(
        id=event.request_id,
        version=event.version,
        event_id=event.event_id,
        ts=_timestamp(event.occurred_at),
        expires_ts=_ts_or_none(event.expires_at),
        party=event.applicant.party_id,
        region=event.applicant.region,
        instrument=event.instrument,
        amount=event.amount,
        amount_cny=_money_cny(event.amount, config),
        collateral_numbers=numbers,
        inline=inline,
        purpose=event.purpose or "",
        language=language_of(event.purpose or ""),
    )


def decay(age_days: float, half_life_days: float) -> float:
    return math.pow(0.5, max(0.0, age_days) / half_life_days)
