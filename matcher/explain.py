"""Why a match holds: component values, matched IPC codes and terms, money facts, and short reasons
in the language of the demand (a Chinese demand gets Chinese reasons)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from matcher.config import MatchingConfig
from matcher.entities import Demand, Offer
from matcher.financing import Collateral, financing_fit
from matcher.scoring import Components, matched_codes, matched_terms, offer_fit
from schemas import MatchFacts, Money
from schemas.types import MAX_AMOUNT

__all__ = ["Explanation", "explain_financing", "explain_offer", "explained_with_inferred_field", "with_inferred_field"]

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


@dataclass(frozen=True, slots=True)
class Explanation:
    components: dict[str, float]
    reasons: tuple[str, ...]
    matched_ipc: tuple[str, ...]
    matched_terms: tuple[str, ...]
    facts: MatchFacts


def _money(amount_cny: float, currency: str, config: MatchingConfig) -> Money | None:
    """A CNY amount in ``currency``: to the cent, or to three significant digits below a cent (a
    valid price can be a fraction of one). None without a rate, or above what a Money may hold (a
    sum of collateral values can be)."""
    rate = config.cny_per_unit.get(currency)
    if rate is None or amount_cny <= 0:
        return None
    value = amount_cny / rate
    text = f"{value:.2f}" if value >= 0.01 else f"{value:.3g}"
    return _money_of(text, currency) if Decimal(text) <= MAX_AMOUNT else None


_MONIES_KEPT = 4096
_monies: dict[tuple[str, str], Money] = {}


def _money_of(amount: str, currency: str) -> Money:
    """The Money of an amount's exact text (``Decimal("1.50")`` and ``Decimal("1.5")`` print
    differently). Cached: an offer entering a hundred seekers' views is explained a hundred times in
    one trigger, with the same asking price and the same few budget currencies; a Money is immutable.
    A plain dict holding Money values rather than an ``lru_cache``, whose dict the full collections
    untrack and each new key puts back in the young generation, to be walked whole."""
    money = _monies.get((amount, currency))
    if money is None:
        if len(_monies) >= _MONIES_KEPT:
            _monies.clear()
        money = _monies[(amount, currency)] = Money(amount=Decimal(amount), currency=currency)
    return money


def _fmt(money: Money | None) -> str:
    if money is None:
        return "—"
    amount = f"{money.amount:,.0f}" if money.amount >= 100 else f"{money.amount.normalize():f}"
    return f"{amount} {money.currency}"


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


def explain_offer(demand: Demand, offer: Offer, financier: Demand | None, config: MatchingConfig) -> Explanation:
    fit = offer_fit(demand, offer, config)
    if fit is None:
        raise ValueError(f"{offer.id} does not fit {demand.id}: nothing to explain")
    zh = demand.language == "zh"
    codes = matched_codes(demand.codes, offer.codes)
    terms = matched_terms(demand.query, offer.term_keys)
    reasons = _topic_reasons(zh, fit.parts, codes, terms)
    budget = demand.budget_max
    asking = None if offer.asking_price is None else _money_of(str(offer.asking_price[0]), offer.asking_price[1])
    asking_in_budget = None
    gap = None
    if budget is not None and offer.price_cny is not None:
        asking_in_budget = _money(offer.price_cny, budget.currency, config)
    if asking is None:
        reasons.append("价格面议" if zh else "Price negotiable")
    elif budget is not None and fit.gap_cny is None:
        within = offer.price_cny is not None and demand.budget_max_cny is not None
        within = within and offer.price_cny <= demand.budget_max_cny  # type: ignore[operator]
        if zh:
            reasons.append(
                f"报价{_fmt(asking)}，{'在预算内' if within else '略超预算（容差内）'}（预算上限{_fmt(budget)}）"
            )
        else:
            state = "within budget" if within else "slightly over budget (within tolerance)"
            reasons.append(f"Asking {_fmt(asking)}, {state} (max {_fmt(budget)})")
    if fit.gap_cny is not None and budget is not None and financier is not None:
        gap = _money(fit.gap_cny, budget.currency, config)
        if zh:
            reasons.append(f"报价超出预算{_fmt(gap)}，可由{financier.id}融资补足")
        else:
            reasons.append(f"Gap of {_fmt(gap)} over budget can be financed by {financier.id}")
    if fit.parts.region == 1.0:
        reasons.append(f"同一地区（{offer.region}）" if zh else f"Same region ({offer.region})")
    elif fit.parts.region == 0.5:
        reasons.append(f"同一国家（{offer.region[:2]}）" if zh else f"Same country ({offer.region[:2]})")
    reasons.append(f"专利价值指数{offer.strength:.2f}" if zh else f"Patent strength index {offer.strength:.2f}")
    facts = MatchFacts(asking_price=asking, budget_max=budget, asking_in_budget_currency=asking_in_budget, gap=gap)
    return Explanation(fit.parts.as_dict(), tuple(reasons), tuple(codes), tuple(terms), facts)


def explain_financing(collateral: Collateral, lender: Demand, config: MatchingConfig) -> Explanation:
    parts = financing_fit(collateral, lender, config)
    if parts is None:
        raise ValueError(f"{lender.id} does not fit {collateral.request.id}: nothing to explain")
    request = collateral.request
    zh = lender.language == "zh"
    codes = matched_codes(lender.codes, collateral.codes)
    terms = matched_terms(lender.query, collateral.terms) if parts.text is not None else []
    reasons = _topic_reasons(zh, parts, codes, terms)
    ltv = None
    if request.amount_cny is not None and collateral.value_cny:
        ltv = round(request.amount_cny / collateral.value_cny, 4)
    if zh:
        reasons.append(f"申请金额{_fmt(request.amount)}，在{lender.id}的授信区间内")
        if ltv is not None and lender.intent == "lend":
            cap = f"（上限{lender.max_ltv:.0%}）" if lender.max_ltv is not None else ""
            reasons.append(f"质押率{ltv:.0%}{cap}")
        if lender.regions_served:
            reasons.append(f"服务地区覆盖{request.region}")
    else:
        reasons.append(f"Amount {_fmt(request.amount)} within {lender.id}'s ticket range")
        if ltv is not None and lender.intent == "lend":
            cap = f" (cap {lender.max_ltv:.0%})" if lender.max_ltv is not None else ""
            reasons.append(f"Loan-to-value {ltv:.0%}{cap}")
        if lender.regions_served:
            reasons.append(f"Serves {request.region}")
    value = None if collateral.value_cny is None else _money(collateral.value_cny, "CNY", config)
    facts = MatchFacts(requested_amount=request.amount, collateral_value=value, loan_to_value=ltv)
    return Explanation(parts.as_dict(), tuple(reasons), tuple(codes), tuple(terms), facts)


def with_inferred_field(
    components: Mapping[str, float], reasons: Sequence[str], field: float, codes: Sequence[str]
) -> tuple[dict[str, float], list[str], list[str]]:
    """The components, reasons and matched codes of an offer's match whose field part was inferred
    (:mod:`matcher.inference`): the field part joins the components, and a first reason says which of
    the offer's codes it comes from (the matched codes). The reason is in the language of the last of
    the others, the offer's strength, which :func:`explain_offer` always gives in the demand's."""
    field = round(field, 6)
    components = {"field": field} | {name: value for name, value in components.items() if name != "field"}
    if field <= 0 or not codes:
        return components, list(reasons), []
    zh = bool(reasons) and any("\u4e00" <= ch <= "\u9fff" for ch in reasons[-1])
    name = _level_name(field, zh)
    reason = (
        f"技术领域推断吻合：{'、'.join(codes)}（与最相近的专利{name}）"
        if zh
        else f"Field inferred from the closest patents: {', '.join(codes)} ({name})"
    )
    return components, [reason, *reasons], list(codes)


def explained_with_inferred_field(explanation: Explanation, field: float, codes: Sequence[str]) -> Explanation:
    components, reasons, matched = with_inferred_field(explanation.components, explanation.reasons, field, codes)
    return replace(explanation, components=components, reasons=tuple(reasons), matched_ipc=tuple(matched))
