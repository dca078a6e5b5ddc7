"""Matching configuration: weights, thresholds, the static FX table. The one place for these defaults;
the service reads overrides from ``PATENTMATCH_MATCHING__*``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MatchingConfig", "Weights"]


class Weights(BaseModel):
    """Weights of the score components (DESIGN.md, "Matching"). They need not sum to 1: the score
    divides by the sum of the weights that apply to the pair."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: float = Field(0.35, ge=0)
    text: float = Field(0.30, ge=0)
    price: float = Field(0.15, ge=0)
    strength: float = Field(0.10, ge=0)
    region: float = Field(0.05, ge=0)
    freshness: float = Field(0.05, ge=0)


# Yuan per unit of each currency: a static table, so a replay gives the same matches.
DEFAULT_CNY_PER_UNIT: dict[str, float] = {
    "CNY": 1.0,
    "USD": 7.10,
    "EUR": 7.75,
    "GBP": 9.05,
    "JPY": 0.047,
    "KRW": 0.0052,
    "HKD": 0.91,
    "SGD": 5.30,
    "CHF": 8.10,
    "TWD": 0.22,
}


class MatchingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: Weights = Weights()
    top_k: int = Field(10, ge=1, le=100)
    """Open matches per seeker."""
    reserve: int = Field(10, ge=0, le=1000)
    """Candidates kept behind each seeker's top K, so a match that leaves is replaced without asking
    the shards again."""
    min_score: float = Field(0.35, ge=0, le=1)
    inference_pool: int = Field(20, ge=0, le=200)
    """A demand naming no IPC codes has its field inferred (``matcher.inference``) over this many of its
    best candidates by the other parts, and its open matches are the best K of them by the full score.
    0 turns the inference off (such a demand then matches on the parts that apply alone)."""
    inference_votes: int = Field(5, ge=1, le=200)
    """How many of those best candidates lend their IPC codes to the inferred field."""
    price_tolerance: float = Field(0.10, ge=0, le=1)
    """An asking price up to budget × (1 + tolerance) still fits, with a decaying price score."""
    bridge_stretch: float = Field(0.50, ge=0, le=5)
    """A bridge covers asking prices up to budget × (1 + stretch), the gap financed by a third party."""
    bridge_price_score: float = Field(0.4, ge=0, le=1)
    """The price component of a bridge: the buyer pays more than planned, financed."""
    negotiable_price_score: float = Field(0.7, ge=0, le=1)
    freshness_half_life_days: float = Field(180.0, gt=0)
    cny_per_unit: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_CNY_PER_UNIT))
    bm25_k1: float = Field(1.2, gt=0)
    bm25_b: float = Field(0.75, ge=0, le=1)
    bm25_avg_doc_len: float = Field(60.0, gt=0)
    """A fixed average document length: a live average would make scores depend on the book."""
    tombstone_retention_days: float = Field(30.0, gt=0)
    """How long (event time) a withdrawn or expired entity's version is remembered, so that an older
    version arriving late cannot reopen it; after that the book forgets it and its memory is freed."""

    @model_validator(mode="after")
    def _tolerance_inside_stretch(self) -> MatchingConfig:
        if self.bridge_stretch and self.bridge_stretch <= self.price_tolerance:
            raise ValueError("bridge_stretch must exceed price_tolerance (or be 0 to disable bridges)")
        return self

    def ranked_depth(self, inferred: bool) -> int:
        """How deep a seeker's ranking is kept exact: its top K, or the pool its field is inferred over
        (``inferred``) when that is deeper."""
        return max(self.top_k, self.inference_pool) if inferred else self.top_k

    def depth(self, inferred: bool) -> int:
        """Candidates kept per seeker: the exact ranking, and the reserve behind it."""
        return self.ranked_depth(inferred) + self.reserve

    def to_cny(self, amount: float, currency: str) -> float | None:
        """``amount`` in yuan, or None when the table has no rate (such a pair never matches)."""
        rate = self.cny_per_unit.get(currency)
        return None if rate is None else amount * rate
