"""The hard filters and score of :mod:`matcher.scoring`, computed for many pairs at once with numpy.

Each side of a pair is a mapping of column name → value; one side is usually a single entity (scalars)
and the other many candidates (arrays), and numpy broadcasting does the rest — so one function serves
both directions (a demand against many offers, an offer against many demands). The arithmetic is done
in the same order as the scalar definition so that both give the same rounded scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from matcher.config import MatchingConfig
from matcher.entities import SECONDS_PER_YEAR, Demand, Offer
from matcher.scoring import TOPICAL_FIELD, TOPICAL_TEXT, OfferFit, offer_components
from matcher.store import FloatArray

__all__ = [
    "BOUND_COLUMNS",
    "SHARE_ON_TOPIC",
    "PairScores",
    "bound_coefficients",
    "financing_fits_on_few_columns",
    "financing_scores",
    "fits_on_few_columns",
    "offer_fit_at",
    "round_scores",
    "transaction_score_bounds",
    "transaction_scores",
]

Side = Mapping[str, Any]
BoolArray = Any


def round_scores(values: FloatArray) -> FloatArray:
    return np.floor(values * 1e6 + 0.5) / 1e6


@dataclass(frozen=True)
class PairScores:
    ok: BoolArray
    """Passes every hard filter (for a bridge: every filter but the price, and within the stretch)."""
    score: FloatArray
    gap: BoolArray
    """The price is over budget (beyond the tolerance) and within the bridge stretch."""
    gap_cny: FloatArray
    text: FloatArray | None = None
    """Of a buyer demand and an offer (:func:`transaction_scores`): the text part of each pair that
    passes the filters, 0 for the others; so are ``field`` and ``price``. What an explanation of the
    pair reads (:func:`offer_fit_at`). None of financing pairs, whose explanations do not read them."""
    field: FloatArray | None = None
    price: FloatArray | None = None


def offer_fit_at(scores: PairScores, row: int, d: Demand, o: Offer, config: MatchingConfig) -> OfferFit:
    """:func:`matcher.scoring.offer_fit` of a pair that :func:`transaction_scores` passed, at ``row``,
    from the parts it computed rather than by scoring the pair again, which took half the time of an
    explanation (bench/JOURNAL.md). Strength, region and freshness are cheap, and computed as the
    scalar definition does. The text part may differ from the scalar one in its last bits (the shared terms
    are summed in another order), as the scores of the two paths may: an explanation shows six
    decimals, and ``tests/test_engine.py`` holds the two explanations equal."""
    assert scores.text is not None and scores.field is not None and scores.price is not None
    parts = offer_components(
        d,
        o,
        field=float(scores.field[row]) if d.codes else None,
        text=float(scores.text[row]),
        price=float(scores.price[row]) if d.has_budget else None,
        config=config,
    )
    return OfferFit(parts, float(scores.gap_cny[row]) if scores.gap[row] else None)


def _text(text_raw: FloatArray, qnorm: Any) -> FloatArray:
    """sqrt of the share of the query's norm (:func:`~matcher.text.query_norm`) found, capped at 1."""
    safe_norm = np.where(qnorm > 0, qnorm, 1.0)
    return np.where(qnorm > 0, np.sqrt(np.minimum(1.0, text_raw / safe_norm)), 0.0)


def _region(a: Side, b: Side) -> FloatArray:
    return np.where(a["region"] == b["region"], 1.0, np.where(a["country"] == b["country"], 0.5, 0.0))


def _freshness(age_seconds: Any, config: MatchingConfig) -> FloatArray:
    return cast(FloatArray, np.power(0.5, np.maximum(0.0, age_seconds / 86400.0) / config.freshness_half_life_days))


def _combine(
    config: MatchingConfig,
    *,
    field: FloatArray,
    field_applies: Any,
    text: FloatArray,
    text_applies: Any,
    price: FloatArray,
    price_applies: Any,
    strength: Any,
    region: FloatArray,
    freshness: FloatArray,
) -> FloatArray:
    w = config.weights
    total = np.where(field_applies, w.field, 0.0)
    weighted = np.where(field_applies, w.field * field, 0.0)
    total = np.where(text_applies, total + w.text, total)
    weighted = np.where(text_applies, weighted + w.text * text, weighted)
    total = np.where(price_applies, total + w.price, total)
    weighted = np.where(price_applies, weighted + w.price * price, weighted)
    total = total + w.strength
    weighted = weighted + w.strength * strength
    total = total + w.region
    weighted = weighted + w.region * region
    total = total + w.freshness
    weighted = weighted + w.freshness * freshness
    safe_total = np.where(total > 0, total, 1.0)
    return np.where(total > 0, round_scores(weighted / safe_total), 0.0)


def transaction_scores(
    d: Side, o: Side, *, territory_ok: BoolArray, text_raw: FloatArray, field: FloatArray, config: MatchingConfig
) -> PairScores:
    """Buyer demand(s) ``d`` against offer(s) ``o`` (see :func:`matcher.scoring.offer_fit`).

    The hard filters run over every pair; the score only over the pairs that pass them."""
    ok = (d["party"] != o["party"]) & territory_ok
    meet = np.maximum(d["ts"], o["ts"])
    with np.errstate(invalid="ignore", divide="ignore"):
        remaining = (o["min_expiry"] - meet) / SECONDS_PER_YEAR
        ok = ok & (np.isnan(d["min_rem"]) | (remaining >= d["min_rem"]))
        text = _text(text_raw, d["qnorm"])
        field = np.where(d["has_codes"], field, 0.0)
        ok = ok & _fits_on_few_columns(d, o, on_topic=(field >= TOPICAL_FIELD) | (text >= TOPICAL_TEXT), config=config)

    rows = np.flatnonzero(np.broadcast_to(ok, np.shape(text)))
    d, o = _take(d, rows), _take(o, rows)
    text, field = text[rows], field[rows]
    price, bmax, has_budget = o["price"], d["bmax"], d["has_budget"]
    with np.errstate(invalid="ignore", divide="ignore"):
        negotiable = np.isnan(price)
        fits = price <= bmax
        within_tolerance = price <= bmax * (1 + config.price_tolerance)
        within_stretch = (price <= bmax * (1 + config.bridge_stretch)) & (config.bridge_stretch > 0)
        tolerance = config.price_tolerance if config.price_tolerance > 0 else 1.0
        over_score = 1.0 - (price / bmax - 1) / tolerance
        # The first that holds of negotiable, fits, within tolerance, within stretch; nested ``where``
        # is ~4x cheaper than ``np.select`` on a few thousand rows (which broadcasts every choice).
        price_score = np.where(
            negotiable,
            config.negotiable_price_score,
            np.where(
                fits,
                1.0,
                np.where(within_tolerance, over_score, np.where(within_stretch, config.bridge_price_score, 0.0)),
            ),
        )
    gap = has_budget & ~negotiable & ~within_tolerance & within_stretch
    score = _combine(
        config,
        field=field,
        field_applies=d["has_codes"],
        text=text,
        text_applies=True,
        price=price_score,
        price_applies=has_budget,
        strength=o["strength"],
        region=_region(d, o),
        freshness=_freshness(d["ts"] - o["ts"], config),
    )
    n = len(text_raw) if np.ndim(text_raw) else 1
    full_score, full_gap, full_gap_cny = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)
    full_score[rows] = score
    full_gap[rows] = gap
    full_gap_cny[rows] = np.where(gap, price - np.nan_to_num(bmax), 0.0)
    full_ok = np.zeros(n, dtype=bool)
    full_ok[rows] = True
    full_text, full_field, full_price = np.zeros(n), np.zeros(n), np.zeros(n)
    full_text[rows], full_field[rows], full_price[rows] = text, field, price_score
    return PairScores(
        ok=full_ok,
        score=full_score,
        gap=full_gap,
        gap_cny=full_gap_cny,
        text=full_text,
        field=full_field,
        price=full_price,
    )


def fits_on_few_columns(d: Side, o: Side, *, text_raw: FloatArray, field: FloatArray, config: MatchingConfig) -> Any:
    """The hard filters of :func:`transaction_scores` that read few of the offers' columns: on topic, a
    deal type in common, granted if required, priced within the budget (and its stretch).

    A demand's top K applies them first to every offer on topic (hundreds of thousands on a 1M book),
    and scores only those that pass. So ``d`` is a single demand (scalars), and the text gate compares
    the share of its norm found with :data:`SHARE_ON_TOPIC` rather than take the text part's square
    root of every offer. ``o`` needs ``deal``; ``granted`` may be a scalar True when the demand does not
    require it, and ``price`` and ``rate_known`` scalars when it has no budget (the columns are not
    read then)."""
    qnorm = float(d["qnorm"])
    text_on_topic = text_raw / qnorm >= SHARE_ON_TOPIC if qnorm > 0 else False
    field_on_topic = field >= TOPICAL_FIELD if d["has_codes"] else False
    with np.errstate(invalid="ignore"):
        return _fits_on_few_columns(d, o, on_topic=field_on_topic | text_on_topic, config=config)


def _smallest_share_on_topic() -> float:
    """The least share of a query's norm whose text part (:func:`_text`: its square root) reaches
    ``TOPICAL_TEXT``, to the last bit: square roots are correctly rounded and never decrease, so a
    share is on topic exactly when it is at least this."""
    share = TOPICAL_TEXT * TOPICAL_TEXT
    while math.sqrt(share) < TOPICAL_TEXT:
        share = math.nextafter(share, math.inf)
    while math.sqrt(math.nextafter(share, 0.0)) >= TOPICAL_TEXT:
        share = math.nextafter(share, 0.0)
    return share


SHARE_ON_TOPIC = _smallest_share_on_topic()


def _fits_on_few_columns(d: Side, o: Side, *, on_topic: BoolArray, config: MatchingConfig) -> Any:
    ok = ((d["deal"] & o["deal"]) != 0) & (~d["require_granted"] | o["granted"])
    ok = ok & on_topic
    price, bmax = o["price"], d["bmax"]
    stretch_limit = (
        bmax * (1 + config.bridge_stretch) if config.bridge_stretch > 0 else bmax * (1 + config.price_tolerance)
    )
    affordable = np.isnan(price) | (price <= stretch_limit)
    return ok & (~d["has_budget"] | (d["rate_known"] & o["rate_known"] & affordable))


BOUND_SLACK = 2e-6
"""Added to every bound: the bound's arithmetic differs from the score's, and the score is rounded to
six decimals, so a bound without slack could fall a rounding step below the score it bounds."""


BOUND_COLUMNS = {
    "bound_rest": np.float64,
    "bound_scale": np.float64,
    "bound_field": np.float64,
    "inv_qnorm": np.float64,
}
"""What a buyer demand contributes to :func:`transaction_score_bounds`, by :func:`bound_coefficients`."""


def bound_coefficients(*, has_codes: bool, has_budget: bool, qnorm: float, config: MatchingConfig) -> dict[str, float]:
    """A buyer demand's part of :func:`transaction_score_bounds`, computed once per demand.

    The bound is the weighted mean of the score with price, region and freshness at their best, so
    for a given demand it is ``rest + scale * (w_text * text + w_strength * strength) + field_weight *
    field``: an offer enters only through its text, field and strength. An offer's percolation
    bounds every demand on topic with it (hundreds of thousands on a large book), so the parts that
    depend on the demand alone are kept in its row."""
    w = config.weights
    best_price = max(1.0, config.negotiable_price_score, config.bridge_price_score)
    field_weight = w.field if has_codes else 0.0
    price_weight = w.price if has_budget else 0.0
    total = field_weight + price_weight + w.text + w.strength + w.region + w.freshness
    scale = 1.0 / total if total > 0 else 0.0
    return {
        "bound_rest": (price_weight * best_price + w.region + w.freshness) * scale + BOUND_SLACK,
        "bound_scale": scale,
        "bound_field": field_weight * scale,
        "inv_qnorm": 1.0 / qnorm if qnorm > 0 else 0.0,
    }


def transaction_score_bounds(
    d: Side, strength: Any, *, text_raw: FloatArray, field: FloatArray, config: MatchingConfig
) -> FloatArray:
    """For every pair, a number the score of :func:`transaction_scores` cannot exceed.

    It needs only what the index lookup already gives (text relevance and field), the offer's
    ``strength`` and the demand's :func:`bound_coefficients` (``d``); price, region and freshness
    count at their best, and no filter is applied. So a pair whose bound is under a threshold (the
    last score of a demand's ranked list, or the floor a newcomer must reach) can be skipped without
    gathering its columns or scoring it."""
    w = config.weights
    text = np.sqrt(np.minimum(1.0, text_raw * d["inv_qnorm"]))  # _text, by the stored inverse of the norm
    bound: FloatArray = d["bound_rest"] + d["bound_scale"] * (w.text * text + w.strength * strength)
    bound += d["bound_field"] * field
    return bound


def _take(side: Side, rows: Any) -> dict[str, Any]:
    """The given rows of a side's array columns (a single entity's scalars stay as they are)."""
    return {name: value[rows] if np.ndim(value) else value for name, value in side.items()}


LEND, INVEST = 0, 1
PLEDGE_LOAN, EQUITY = 0, 1


def financing_fits_on_few_columns(r: Side, f: Side) -> Any:
    """The hard filters of :func:`financing_scores` that read few columns: another party, the instrument
    the financier provides, an amount within its ticket range. ``r`` needs ``party``, ``instrument`` and
    ``amount``. A new financier applies them first to every request (most fall outside its range), and
    scores only those that pass."""
    amount = r["amount"]
    with np.errstate(invalid="ignore"):
        ok = (r["party"] != f["party"]) & (r["instrument"] == f["intent"])
        return ok & ~np.isnan(amount) & f["rate_known"] & (amount >= f["bmin"]) & (amount <= f["bmax"])


def financing_scores(
    r: Side,
    f: Side,
    *,
    territory_ok: BoolArray,
    served_ok: BoolArray,
    text_raw: FloatArray,
    field: FloatArray,
    config: MatchingConfig,
) -> PairScores:
    """Financing request(s) ``r`` against lender / investor demand(s) ``f``
    (see :func:`matcher.financing.financing_fit`)."""
    amount = r["amount"]
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = financing_fits_on_few_columns(r, f) & territory_ok & served_ok
        ltv = amount / r["value"]
        limits_ltv = (f["intent"] == LEND) & ~np.isnan(f["max_ltv"])
        ok = ok & (~limits_ltv | (~np.isnan(ltv) & (ltv <= f["max_ltv"])))
        ok = ok & (~f["require_granted"] | r["granted"])
        text = _text(text_raw, f["qnorm"])
        field = np.where(f["has_codes"], field, 0.0)
        ok = ok & (~f["has_codes"] | (field >= TOPICAL_FIELD) | (text >= TOPICAL_TEXT))
        price = np.where(limits_ltv, 1.0 - 0.5 * (ltv / f["max_ltv"]), 1.0)
    score = _combine(
        config,
        field=field,
        field_applies=f["has_codes"],
        text=text,
        text_applies=f["has_topic"],
        price=np.nan_to_num(price),
        price_applies=True,
        strength=r["strength"],
        region=_region(r, f),
        freshness=_freshness(r["ts"] - f["ts"], config),
    )
    false = np.zeros_like(np.asarray(score), dtype=bool)
    return PairScores(ok=np.asarray(ok), score=np.asarray(score), gap=false, gap_cny=np.zeros_like(score))
