"""The public contract: every event patentmatch reads or writes, as strict pydantic v2 models.

Input events (offers, demands, financing requests) share :class:`InputEvent`'s envelope. Output events
are :class:`MatchEvent` (``match`` and ``revoke``) and :class:`DeadLetter`. Every model forbids unknown
fields and is frozen: a decoded event is a value, never edited in place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, model_validator
from pydantic_core import PydanticCustomError

from schemas.types import (
    AmountValue,
    CountryCode,
    CurrencyCode,
    EntityId,
    IpcCode,
    IsoDate,
    LongText,
    PositiveInt,
    RegionCode,
    ShortText,
    StrictBool,
    Term,
    Timestamp,
    Title,
)

__all__ = [
    "Budget",
    "BuyerDemand",
    "CollateralRef",
    "DeadLetter",
    "EntityRef",
    "FieldError",
    "FinancingRequest",
    "InputEvent",
    "MatchEvent",
    "MatchFacts",
    "Money",
    "Party",
    "Patent",
    "PatentOffer",
]

MAX_PATENTS = 200

PartyKind = Literal["enterprise", "university", "institute", "individual", "bank", "fund", "agency"]
DealType = Literal["assignment", "exclusive_license", "sole_license", "non_exclusive_license"]
Intent = Literal["acquire", "license", "lend", "invest"]
Instrument = Literal["pledge_loan", "equity"]
MatchKind = Literal["transaction", "financing", "bridge"]
RevokeReason = Literal["withdrawn", "expired", "updated-no-longer-fits", "superseded"]


def _semantic(message: str) -> PydanticCustomError:
    """A rule across fields (dates in order, min below max): the record is well formed but
    does not make sense. The codec reports these as ``error_kind = semantic``."""
    return PydanticCustomError("semantic", message)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Party(_Model):
    party_id: EntityId
    name: ShortText
    kind: PartyKind
    region: RegionCode

    @property
    def country(self) -> str:
        return self.region[:2]


class Money(_Model):
    amount: AmountValue
    currency: CurrencyCode


class Patent(_Model):
    number: Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9A-Z]{3,24}(\.[0-9A-Z])?$", strict=True)]
    title: Title
    abstract: LongText | None = None
    language: Literal["zh", "en"]
    ipc: Annotated[list[IpcCode], Field(max_length=50)] = []
    kind: Literal["invention", "utility_model", "design"]
    legal_status: Literal["granted", "pending", "expired", "invalidated"]
    filing_date: IsoDate
    expiry_date: IsoDate | None = None
    claims_count: Annotated[StrictInt, Field(ge=0, le=10_000)] | None = None
    family_size: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = None
    forward_citations: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = None
    appraised_value: Money | None = None

    @property
    def territory(self) -> str:
        """The country (or regional office, EP/WO) that granted the patent: its number's prefix."""
        return self.number[:2]

    @model_validator(mode="after")
    def _dates_in_order(self) -> Patent:
        if self.expiry_date is not None and self.expiry_date <= self.filing_date:
            raise _semantic("expiry_date must be after filing_date")
        return self


class CollateralRef(_Model):
    """Collateral named only by patent number; completed from the patent registry (offers seen)."""

    number: Annotated[str, Field(pattern=r"^[A-Z]{2}[0-9A-Z]{3,24}(\.[0-9A-Z])?$", strict=True)]


class InputEvent(_Model):
    """The envelope every input event carries."""

    event_id: EntityId
    schema_version: Literal[1]
    occurred_at: Timestamp
    source: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", strict=True)]
    version: PositiveInt
    status: Literal["active", "withdrawn"]
    expires_at: Timestamp | None = None

    @model_validator(mode="after")
    def _expiry_after_event(self) -> InputEvent:
        if self.expires_at is not None and self.expires_at <= self.occurred_at:
            raise _semantic("expires_at must be after occurred_at")
        return self


KeywordList = Annotated[list[Term], Field(max_length=50)]


class PatentOffer(InputEvent):
    """Patents offered for sale or licence (topic ``patent.offers``, key ``offer_id``)."""

    offer_id: EntityId
    seller: Party
    patents: Annotated[list[Patent], Field(min_length=1, max_length=MAX_PATENTS)]
    deal_types: Annotated[list[DealType], Field(min_length=1, max_length=4)]
    asking_price: Money | None = None
    keywords: KeywordList = []
    industries: Annotated[list[Term], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _unique_patents(self) -> PatentOffer:
        numbers = [p.number for p in self.patents]
        if len(set(numbers)) != len(numbers):
            raise _semantic("each patent number may appear once in an offer")
        return self


class Budget(_Model):
    min: AmountValue | None = None
    max: AmountValue
    currency: CurrencyCode

    @model_validator(mode="after")
    def _min_below_max(self) -> Budget:
        if self.min is not None and self.min > self.max:
            raise _semantic("budget.min must not exceed budget.max")
        return self


class BuyerDemand(InputEvent):
    """An enterprise seeking technology, or a lender / investor seeking IP-backed deals
    (topic ``patent.demands``, key ``demand_id``)."""

    demand_id: EntityId
    buyer: Party
    intent: Intent
    description: Annotated[str, Field(min_length=1, max_length=5_000, strict=True)]
    ipc: Annotated[list[IpcCode], Field(max_length=50)] = []
    keywords: KeywordList = []
    deal_types: Annotated[list[DealType], Field(max_length=4)] = []
    budget: Budget | None = None
    territories: Annotated[list[CountryCode], Field(max_length=50)] = []
    min_remaining_years: Annotated[StrictInt | StrictFloat, Field(ge=0, le=30)] | None = None
    require_granted: StrictBool = True
    regions_served: Annotated[list[RegionCode], Field(max_length=100)] = []
    max_loan_to_value: Annotated[StrictFloat | StrictInt, Field(gt=0, le=1)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> BuyerDemand:
        if not self.description.strip():
            raise _semantic("description must not be blank")
        if self.intent in ("lend", "invest") and self.budget is None:
            raise _semantic(f"a {self.intent} demand needs a budget (its ticket range)")
        if self.intent == "acquire" and any(d != "assignment" for d in self.deal_types):
            raise _semantic("an acquire demand can only ask for assignment")
        if self.intent == "license" and "assignment" in self.deal_types:
            raise _semantic("a license demand cannot ask for assignment")
        if self.intent in ("lend", "invest") and self.deal_types:
            raise _semantic("deal_types apply to acquire and license demands only")
        if self.intent != "lend" and (self.max_loan_to_value is not None or self.regions_served):
            raise _semantic("max_loan_to_value and regions_served apply to lend demands only")
        return self


class FinancingRequest(InputEvent):
    """A patent holder asking for a pledge loan or investment (topic ``patent.financing``)."""

    request_id: EntityId
    applicant: Party
    instrument: Instrument
    amount: Money
    term_months: Annotated[StrictInt, Field(ge=1, le=360)]
    collateral: Annotated[list[Patent | CollateralRef], Field(min_length=1, max_length=MAX_PATENTS)]
    purpose: Annotated[str, Field(min_length=1, max_length=2_000, strict=True)] | None = None


class EntityRef(_Model):
    """One side of a match: which entity, at which version."""

    entity: Literal["offer", "demand", "financing"]
    id: EntityId
    version: PositiveInt


class MatchFacts(_Model):
    """Money facts behind a match, so a broker can check them without looking anything up."""

    asking_price: Money | None = None
    budget_max: Money | None = None
    asking_in_budget_currency: Money | None = None
    gap: Money | None = None
    requested_amount: Money | None = None
    collateral_value: Money | None = None
    loan_to_value: float | None = None


class MatchEvent(_Model):
    """A match entering a seeker's top K (``match``) or leaving it (``revoke``)
    (topic ``patent.matches``, key = the seeker's id)."""

    type: Literal["match", "revoke"]
    match_id: Annotated[str, Field(min_length=1, max_length=64)]
    kind: MatchKind
    seeker: EntityRef
    counterpart: EntityRef
    financier: EntityRef | None = None
    score: Annotated[float, Field(ge=0, le=1)] | None = None
    rank: Annotated[int, Field(ge=1)] | None = None
    components: dict[str, float] = {}
    reasons: list[str] = []
    matched_ipc: list[str] = []
    matched_terms: list[str] = []
    facts: MatchFacts | None = None
    reason: RevokeReason | None = None
    trigger_event_id: EntityId
    occurred_at: datetime
    emitted_at: datetime

    @model_validator(mode="after")
    def _fields_for_type(self) -> MatchEvent:
        if self.type == "match" and (self.score is None or self.rank is None):
            raise ValueError("a match carries score and rank")
        if self.type == "revoke" and self.reason is None:
            raise ValueError("a revoke carries a reason")
        return self


class FieldError(_Model):
    """One validation problem: where (a path into the record) and what."""

    path: str
    message: str


class DeadLetter(_Model):
    """A rejected input record, with where it came from and why (topic ``patent.deadletter``)."""

    source_topic: str
    partition: int
    offset: int
    key: str | None = None
    value: str
    value_encoding: Literal["utf-8", "base64"]
    value_truncated: bool
    original_size: int
    sha256: str
    error_kind: Literal["decode", "schema", "semantic", "too_large"]
    errors: list[FieldError]
    received_at: datetime


def entity_id(event: InputEvent) -> str:
    """The id of the entity an input event is about: the key of its record on its topic."""
    for attribute in ("offer_id", "demand_id", "request_id"):
        value = getattr(event, attribute, None)
        if isinstance(value, str):
            return value
    raise TypeError(f"not an input event: {type(event).__name__}")
