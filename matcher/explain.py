"""Why a match holds: component values, matched IPC codes and terms, money facts, and short reasons
in the language of the demand (a Chinese demand gets Chinese reasons)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from matcher.config import MatchingConfig
from matcher.entities import Demand, Offer
from matcher.financing import Collateral, financing_fit
from matcher.scoring import Components, OfferFit, matched_codes, matched_terms, offer_fit
from schemas import MatchFacts, Money
from schemas.types import MAX_AMOUNT

__all__ = [
    "Explanation",
    "Facts",
    "explain_financing",
    "explain_offer",
    "with_inferred_field",
]

_LEVEL_NAMES = (  # the field score of each IPC level shared, best first
    (1.0, ("同一技术小组", "same subgroup")),
    (0.8, ("同一技术大组", "same main group")),
    (0.6, ("同一技术小类", "same subclass")),
    (0.3, ("同一技术大类", "same class")),
    (0.1, ("同一技术部", "same section")),
)


def _level_name(field: float, zh: bool) -> str:
    """The deepest level the score reaches (a blended score over several codes names the level below it)."""
    for score, names in _LEVEL_NAMES:
        if field >= score:
            return names[0] if zh else names[1]
    return ""


Amount = tuple[Decimal, str]
"""An amount and its currency, as :class:`schemas.Money` holds them."""

_FACT_NAMES = tuple(MatchFacts.model_fields)


@dataclass(frozen=True, slots=True)
class Facts:
    """The money facts of a match: the fields of :class:`schemas.MatchFacts`, in its order, as plain
    values. The model is made only when a match event is (:meth:`to_model`, :meth:`to_json`): a busy
    trigger explains a hundred matches, and validating the amounts the engine had just computed took
    about a quarter of the time to explain one (bench/JOURNAL.md, 3 December, night)."""

    asking_price: Amount | None = None
    budget_max: Amount | None = None
    asking_in_budget_currency: Amount | None = None
    gap: Amount | None = None
    requested_amount: Amount | None = None
    collateral_value: Amount | None = None
    loan_to_value: float | None = None

    def to_model(self) -> MatchFacts:
        return MatchFacts.model_validate(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """``self.to_model().model_dump(mode="json", exclude_none=True)``, without the model."""
        out: dict[str, Any] = {}
        for name in _FACT_NAMES:
            value = getattr(self, name)
            if isinstance(value, tuple):
                out[name] = {"amount": str(value[0]), "currency": value[1]}
            elif value is not None:
                out[name] = value
        return out


def _amount_of(money: Money) -> Amount:
    return (money.amount, money.currency)


@dataclass(frozen=True, slots=True)
class Explanation:
    components: dict[str, float]
    reasons: tuple[str, ...]
    matched_ipc: tuple[str, ...]
    matched_terms: tuple[str, ...]
    facts: Facts


def _money(amount_cny: float, currency: str, config: MatchingConfig) -> Amount | None:
    """A CNY amount in ``currency``: to the cent, or to three significant digits below a cent (a
    valid price can be a fraction of one). None without a rate, or above what a Money may hold (a
    sum of collateral values can be)."""
    rate = config.cny_per_unit.get(currency)
    if rate is None or amount_cny <= 0:
        return None
    value = amount_cny / rate
    amount = Decimal(f"{value:.2f}" if value >= 0.01 else f"{value:.3g}")
    return (amount, currency) if amount <= MAX_AMOUNT else None


def _fmt(money: Amount | None) -> str:
    if money is None:
        return "—"
    value, currency = money
    return f"{_figure(value)} {currency}"


def _figure(value: Decimal) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value.normalize():f}"


def _fmt_converted(money: Amount, converted: Amount | None, zh: bool) -> str:
    """``money``, and beside it the same amount in another currency when there is one to give."""
    if converted is None or converted[1] == money[1]:
        return _fmt(money)
    return f"{_fmt(money)}（约{_fmt(converted)}）" if zh else f"{_fmt(money)} (about {_fmt(converted)})"


def _topic_reasons(zh: bool, parts: Components, codes: list[str], terms: list[str]) -> list[str]:
    reasons = []
    if parts.field is not None and codes:
        name = _level_name(parts.field, zh)
        reasons.append(
            f"技术领域吻合：{'、'.join(codes)}（{name}）" if zh else f"Field fits: {', '.join(codes)} ({name})"
        )
    if terms:
        reasons.append(f"需求描述命中：{'、'.join(terms)}" if zh else f"Description matches: {', '.join(terms)}")
    return reasons


def _closing_reasons(zh: bool, parts: Components, region: str) -> list[str]:
    """The region the two sides share, if any (``region``: the offer's or the applicant's), and the
    patents' strength, always last (:func:`with_inferred_field` reads the language from it)."""
    reasons = []
    if parts.region == 1.0:
        reasons.append(f"同一地区（{region}）" if zh else f"Same region ({region})")
    elif parts.region == 0.5:
        reasons.append(f"同一国家（{region[:2]}）" if zh else f"Same country ({region[:2]})")
    reasons.append(f"专利价值指数{parts.strength:.2f}" if zh else f"Patent strength index {parts.strength:.2f}")
    return reasons


def _price_reason(
    zh: bool,
    asking: Amount | None,
    asking_in_budget: Amount | None,
    budget: Amount | None,
    within: bool,
    gap: Amount | None,
    financier: Demand | None,
) -> str:
    """The asking price against the buyer's budget: ``within`` it, over it within the tolerance, or over
    it by a ``gap`` that ``financier`` can bridge. A price in another currency than the budget's is
    also given in the budget's (at the engine's rate table, as the price filter compared them)."""
    if asking is None:
        return "价格面议" if zh else "Price negotiable"
    shown = _fmt_converted(asking, asking_in_budget, zh)
    if budget is None:
        return f"报价{shown}" if zh else f"Asking {shown}"
    if gap is not None:
        if zh:
            by = "" if financier is None else f"，可由{financier.id}融资补足"
            return f"报价{shown}，超出预算{_fmt(gap)}（预算上限{_fmt(budget)}）{by}"
        by = "" if financier is None else f", which {financier.id} can finance"
        return f"Asking {shown}, {_fmt(gap)} over budget (max {_fmt(budget)}){by}"
    if zh:
        return f"报价{shown}，{'在预算内' if within else '略超预算（容差内）'}（预算上限{_fmt(budget)}）"
    state = "within budget" if within else "slightly over budget (within tolerance)"
    return f"Asking {shown}, {state} (max {_fmt(budget)})"


def explain_offer(
    demand: Demand,
    offer: Offer,
    financier: Demand | None,
    config: MatchingConfig,
    fit: OfferFit | None = None,
    inferred_field: float | None = None,
) -> Explanation:
    """``fit``: the pair's :func:`~matcher.scoring.offer_fit`, when the caller has it already.
    ``inferred_field``: the field part the seeker's ranking inferred (:mod:`matcher.inference`), if it
    did; it joins the explanation as :func:`with_inferred_field` says."""
    if fit is None:
        fit = offer_fit(demand, offer, config)
    if fit is None:
        raise ValueError(f"{offer.id} does not fit {demand.id}: nothing to explain")
    zh = demand.language == "zh"
    codes = matched_codes(demand.codes, offer.codes, fit.parts.field)
    terms = matched_terms(demand.query, offer.term_keys)
    reasons = _topic_reasons(zh, fit.parts, codes, terms)
    budget = None if demand.budget_max is None else _amount_of(demand.budget_max)
    asking = offer.asking_price
    asking_in_budget = gap = None
    if budget is not None and offer.price_cny is not None:
        asking_in_budget = _money(offer.price_cny, budget[1], config)
    if budget is not None and fit.gap_cny is not None:
        gap = _money(fit.gap_cny, budget[1], config)
    within = offer.price_cny is not None and demand.budget_max_cny is not None
    within = within and offer.price_cny <= demand.budget_max_cny  # type: ignore[operator]
    reasons.append(_price_reason(zh, asking, asking_in_budget, budget, within, gap, financier))
    reasons += _closing_reasons(zh, fit.parts, offer.region)
    facts = Facts(asking_price=asking, budget_max=budget, asking_in_budget_currency=asking_in_budget, gap=gap)
    components = fit.parts.as_dict()
    if inferred_field is not None:
        components, reasons, codes = _with_inferred(zh, components, reasons, inferred_field, offer.codes)
    return Explanation(components, tuple(reasons), tuple(codes), tuple(terms), facts)


def _ticket_range(top: Amount, bottom_cny: float | None, zh: bool, config: MatchingConfig) -> str:
    """A lender's or investor's ticket range, in the currency of its budget (``top``, its maximum)."""
    bottom = _money(bottom_cny, top[1], config) if bottom_cny else None
    if bottom is not None:
        return f"{_figure(bottom[0])}–{_fmt(top)}"
    return f"不超过{_fmt(top)}" if zh else f"up to {_fmt(top)}"


def explain_financing(collateral: Collateral, lender: Demand, config: MatchingConfig) -> Explanation:
    parts = financing_fit(collateral, lender, config)
    if parts is None:
        raise ValueError(f"{lender.id} does not fit {collateral.request.id}: nothing to explain")
    request = collateral.request
    amount = _amount_of(request.amount)
    zh = lender.language == "zh"
    codes = matched_codes(lender.codes, collateral.codes)
    terms = matched_terms(lender.query, collateral.terms) if parts.text is not None else []
    reasons = _topic_reasons(zh, parts, codes, terms)
    ltv = None
    if request.amount_cny is not None and collateral.value_cny:
        ltv = round(request.amount_cny / collateral.value_cny, 4)
    assert lender.budget_max is not None and request.amount_cny is not None  # or financing_fit had refused
    top = _amount_of(lender.budget_max)
    ticket = _ticket_range(top, lender.budget_min_cny, zh, config)
    shown = _fmt_converted(amount, _money(request.amount_cny, top[1], config) if top[1] != amount[1] else None, zh)
    if zh:
        reasons.append(f"申请金额{shown}，在{lender.id}的授信区间内（{ticket}）")
        if ltv is not None and lender.intent == "lend":
            cap = f"（上限{lender.max_ltv:.0%}）" if lender.max_ltv is not None else ""
            reasons.append(f"质押率{ltv:.0%}{cap}")
        if lender.regions_served:
            reasons.append(f"服务地区覆盖{request.region}")
    else:
        reasons.append(f"Amount {shown} within {lender.id}'s ticket range ({ticket})")
        if ltv is not None and lender.intent == "lend":
            cap = f" (cap {lender.max_ltv:.0%})" if lender.max_ltv is not None else ""
            reasons.append(f"Loan-to-value {ltv:.0%}{cap}")
        if lender.regions_served:
            reasons.append(f"Serves {request.region}")
    reasons += _closing_reasons(zh, parts, request.region)
    value = None if collateral.value_cny is None else _money(collateral.value_cny, "CNY", config)
    facts = Facts(requested_amount=amount, collateral_value=value, loan_to_value=ltv)
    return Explanation(parts.as_dict(), tuple(reasons), tuple(codes), tuple(terms), facts)


def with_inferred_field(
    components: Mapping[str, float], reasons: Sequence[str], field: float, codes: Sequence[str]
) -> tuple[dict[str, float], list[str], list[str]]:
    """The components, reasons and matched codes of an offer's match whose field part was inferred
    (:mod:`matcher.inference`), from those of its explanation without it: the field part joins the
    components, and a first reason says which of the offer's codes it comes from (the matched codes).
    The reason is in the language of the last of the others, the offer's strength, which
    :func:`explain_offer` always gives in the demand's. The service's merger, which infers the field
    of a pool merged from the shards' answers, adds it so to a shard's explanation."""
    zh = bool(reasons) and any("\u4e00" <= ch <= "\u9fff" for ch in reasons[-1])
    return _with_inferred(zh, components, reasons, field, codes)


def _with_inferred(
    zh: bool, components: Mapping[str, float], reasons: Sequence[str], field: float, codes: Sequence[str]
) -> tuple[dict[str, float], list[str], list[str]]:
    field = round(field, 6)
    components = {"field": field} | {name: value for name, value in components.items() if name != "field"}
    if field <= 0 or not codes:
        return components, list(reasons), []
    name = _level_name(field, zh)
    reason = (
        f"技术领域推断吻合：{'、'.join(codes)}（与最相近的专利{name}）"
        if zh
        else f"Field inferred from the closest patents: {', '.join(codes)} ({name})"
    )
    return components, [reason, *reasons], list(codes)
