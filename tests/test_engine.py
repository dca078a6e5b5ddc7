"""The engine's rules, one at a time: hard filters, score components, the three kinds of match,
revocations, late collateral, bilingual text, determinism."""

from __future__ import annotations

import gc
import logging
import math
import pickle
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jieba
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from matcher import Engine, MatchingConfig, Notice, Weights, scoring
from matcher.engine import entity_from_event
from matcher.explain import explain_offer, with_inferred_field
from matcher.index import _summed
from matcher.market import Market, to_event
from matcher.scoring import TOPICAL_TEXT, field_score, text_score
from matcher.shard import OFFER_COLUMNS
from matcher.text import _ZH_STOP, QUERY_NORM_TERMS, default_analyzer, query_norm
from matcher.vector import (
    BOUND_SLACK,
    SHARE_ON_TOPIC,
    fits_on_few_columns,
    transaction_score_bounds,
    transaction_scores,
)
from schemas import InputEvent, PatentOffer
from tests.builders import demand, lender, offer, patent, request

EMITTED = datetime(2026, 3, 2, tzinfo=UTC)


def run(*events: InputEvent, config: MatchingConfig | None = None, shards: int = 1) -> tuple[Engine, list[Notice]]:
    engine = Engine(config, shards=shards)
    notices: list[Notice] = []
    for event in events:
        notices += engine.apply(event).notices
    return engine, notices


def pairs(engine: Engine) -> set[tuple[str, str, str, str | None]]:
    return {(c.kind, c.seeker_id, c.counterpart_id, c.financier_id) for c in engine.open_matches().values()}


def only(notices: list[Notice], kind: str = "match") -> Notice:
    found = [n for n in notices if n.type == kind]
    assert len(found) == 1, found
    return found[0]


def test_a_fitting_offer_and_demand_match_with_an_explanation_in_the_demands_language() -> None:
    engine, notices = run(offer(), demand())
    assert pairs(engine) == {("transaction", "d1", "o1", None)}
    event = only(notices).to_event(EMITTED)
    assert event.rank == 1 and event.score is not None and 0.35 <= event.score <= 1
    assert event.matched_ipc == ["H01M 10/0525"]
    assert "锂离子" in event.matched_terms
    assert any("技术领域" in r for r in event.reasons) and any("预算" in r for r in event.reasons)
    assert event.facts is not None and event.facts.asking_price is not None
    assert set(event.components) == {"field", "text", "price", "strength", "region", "freshness"}


@pytest.mark.parametrize(
    ("offer_over", "demand_over"),
    [
        ({}, {"buyer": {"party_id": "seller-o1", "name": "x", "kind": "enterprise", "region": "CN-BJ"}}),
        ({"deal_types": ["assignment"]}, {"intent": "license"}),
        ({"deal_types": ["non_exclusive_license"]}, {}),
        ({}, {"territories": ["US"]}),
        ({"patents": [patent(legal_status="pending")]}, {"require_granted": True}),
        ({"patents": [patent(expiry_date="2028-01-01")]}, {"min_remaining_years": 5}),
        ({"asking_price": {"amount": "8000000", "currency": "CNY"}}, {}),
        ({"asking_price": {"amount": "1000000", "currency": "BRL"}}, {}),
        ({}, {"budget": {"max": "500000", "currency": "BRL"}}),
        ({}, {"description": "寻求气体传感器专利", "ipc": ["G01N 27/12"]}),
        ({}, {"intent": "lend", "ipc": [], "budget": {"max": "9000000", "currency": "CNY"}}),
    ],
    ids=[
        "same-party",
        "deal-type",
        "licence-only",
        "territory",
        "granted",
        "remaining-years",
        "price",
        "no-fx-rate-offer",
        "no-fx-rate-budget",
        "off-topic",
        "lender-is-not-a-buyer",
    ],
)
def test_every_hard_filter_keeps_a_pair_apart(offer_over: dict[str, Any], demand_over: dict[str, Any]) -> None:
    engine, _ = run(offer(**offer_over), demand(**demand_over))
    assert pairs(engine) == set()


def test_relaxing_the_filter_lets_the_pair_match() -> None:
    engine, _ = run(offer(patents=[patent(legal_status="pending")]), demand(require_granted=False))
    assert pairs(engine) == {("transaction", "d1", "o1", None)}


def test_an_expired_offer_never_matches() -> None:
    engine, _ = run(offer(expires=0.5), demand(minute=1))
    assert pairs(engine) == set()


@pytest.mark.parametrize(
    ("wanted", "have", "score"),
    [
        (["H01M 10/0525"], ["H01M 10/0525"], 1.0),
        (["H01M"], ["H01M 10/0525"], 1.0),
        (["H01M 10/00"], ["H01M 10/0525"], 1.0),
        (["H01M 10/0566"], ["H01M 10/0525"], 0.8),
        (["H01M 2/10"], ["H01M 10/0525"], 0.6),
        (["H01L 21/02"], ["H01M 10/0525"], 0.3),
        (["H02J"], ["H01M 10/0525"], 0.1),
        (["G06F"], ["H01M 10/0525"], 0.0),
        (["G06F", "H01M 2/10"], ["A61K 9/00", "H01M 10/0525"], 0.6),
    ],
)
def test_field_is_the_deepest_shared_level(wanted: list[str], have: list[str], score: float) -> None:
    assert field_score(wanted, have) == score


def component(notices: list[Notice], name: str) -> float:
    return only(notices).to_event(EMITTED).components[name]


def test_the_field_cache_stays_bounded_and_scores_as_uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    """Codes come from outside, so the cache of code pairs starts again when full; whatever it holds,
    a pair scores as it would uncached."""
    monkeypatch.setattr(scoring, "_FIELD_PAIRS_KEPT", 5)
    monkeypatch.setattr(scoring, "_field_pairs", {})
    monkeypatch.setattr(scoring, "_field_pairs_held", 0)
    codes = ["H01M 10/0525", "H01M 10/054", "H01M 4/13", "H01M", "H01L 21/02", "G06F 16/00", "A61K 9/00"]
    for _ in range(2):
        for wanted in codes:
            for have in codes:
                assert scoring.field_pair(wanted, have) == scoring._field_pair(wanted, have)
                assert sum(map(len, scoring._field_pairs.values())) <= 5


def test_text_relevance_ranks_closer_descriptions_higher() -> None:
    _, close = run(offer(), demand(description="高镍三元锂离子电池正极材料，循环稳定性和热稳定性", ipc=[]))
    _, loose = run(offer(), demand(description="锂离子电池的生产设备", ipc=[]))
    assert component(close, "text") > component(loose, "text") > 0


def english_offer(offer_id: str, number: str, title: str, abstract: str) -> PatentOffer:
    found = patent(number, title=title, abstract=abstract, language="en", ipc=["G06F"])
    return offer(offer_id, patents=[found], keywords=[])


def test_english_terms_weigh_by_how_rare_they_are() -> None:
    analyzer = default_analyzer()
    assert analyzer.weight("lithium") > analyzer.weight("battery") > analyzer.weight("control")
    assert analyzer.weight("zzyzxite") == analyzer.rare_word_weight > analyzer.weight("lithium")
    assert analyzer.weight("2048") == analyzer.unknown_weight  # numbers are not words
    engine, _ = run(
        english_offer("a-control", "US10000001B2", "Conveyor control", "Control of conveyors."),
        english_offer("b-lithium", "US10000002B2", "Lithium extraction", "Extracting lithium from brine."),
        demand(ipc=[], description="Lithium recycling control"),
    )
    ranked = sorted(engine.open_matches().values(), key=lambda c: c.order)
    assert [c.counterpart_id for c in ranked] == ["b-lithium", "a-control"]


# Han characters of every block the analyzer treats as Chinese, common ones weighted up so that
# dictionary words occur, not only the unknown runs jieba's HMM guesses at.
_COMMON_HAN = "的一是在不了有和人中大为上个国以要时来用们生到作地于出分对成会可主发年动同工能下过子产种面而方后多定"
_ANY_HAN = (
    st.characters(min_codepoint=0x3400, max_codepoint=0x4DBF)
    | st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
    | st.characters(min_codepoint=0xF900, max_codepoint=0xFAFF)
)


@settings(max_examples=400, deadline=None)
@given(st.text(st.sampled_from(_COMMON_HAN) | _ANY_HAN, min_size=1, max_size=40))
@example("一种高镍三元锂离子电池正极材料的制备方法，循环稳定性好")
@example("㣓䂢䣔锂电池㖋㙑驪")  # rarer blocks around a dictionary word
def test_chinese_is_cut_into_the_words_jieba_cuts(text: str) -> None:
    """The analyzer cuts Chinese with rjieba for speed; the words must be jieba's own, or the IDF table
    (jieba's) and the matches would drift from what the design names."""
    jieba.setLogLevel(logging.WARNING)
    expected = [w for w in jieba.lcut(text, HMM=True) if len(w) > 1 and w not in _ZH_STOP]
    assert default_analyzer().tokens(text) == expected


def test_the_parts_every_patent_names_do_not_make_a_match() -> None:
    """ "Device", "system", 装置: words of every claim-style abstract say nothing of its field, so an offer
    that shares only those with a demand is not on topic with it."""
    engine, _ = run(
        english_offer("a-conveyor", "US10000001B2", "Conveyor device", "A conveyor system with a drive unit."),
        demand(ipc=[], description="Lithium recycling device and system"),
        offer(
            "b-boiler",
            patents=[patent(ipc=["F22B 1/18"], title="一种余热锅炉装置", abstract="余热锅炉系统。")],
            keywords=[],
        ),
        demand(demand_id="d-zh", ipc=[], description="一种电池回收装置及系统"),
    )
    assert engine.open_matches() == {}


# A detailed demand: its first eight words are what the offer below is about, the rest are its context.
DETAILED = (
    "Electrolyte additive lithium anode dendrite suppression separator coating; our factory runs "
    "injection moulding presses, robotic welding cells, paint shops, forklift fleets, rooftop solar "
    "panels, wastewater treatment, canteen refrigeration, warehouse shelving, security cameras, payroll "
    "software, customer relationship dashboards, logistics planning, export licensing, marketing "
    "brochures, trade fair booths, recruiting interns, insurance audits, parking permits, visitor badges, "
    "fire drills and holiday schedules"
)


def test_a_detailed_demand_is_not_held_to_every_word_it_adds() -> None:
    """Measured against the whole description, the offer below would cover too little of it to be on
    topic; measured against the description's 20 strongest terms, it matches."""
    anode = english_offer(
        "o1",
        "US10000003B2",
        "Lithium anode dendrite suppression",
        "A coating suppresses dendrite growth on a lithium anode.",
    )
    engine, notices = run(anode, demand(ipc=[], description=DETAILED))
    query = engine.analyzer.query_weights([DETAILED])
    terms = Counter(engine.analyzer.tokens(f"{anode.patents[0].title}\n{anode.patents[0].abstract}"))
    assert len(query) > 2 * QUERY_NORM_TERMS
    share_of_norm = text_score(query, terms, sum(terms.values()), MatchingConfig()) ** 2
    share_of_whole = share_of_norm * query_norm(query) / sum(query.values())
    assert math.sqrt(share_of_whole) < TOPICAL_TEXT
    assert pairs(engine) == {("transaction", "d1", "o1", None)}
    assert component(notices, "text") >= TOPICAL_TEXT


def test_text_relevance_is_full_when_an_offer_covers_the_strongest_terms_many_times_over() -> None:
    words = DETAILED.replace(";", "").replace(",", "")
    text_only = MatchingConfig(weights=Weights(field=0, text=1, price=0, strength=0, region=0, freshness=0))
    everything = english_offer("o1", "US10000004B2", words[:500], " ".join([words] * 4))
    _, notices = run(everything, demand(ipc=[], description=DETAILED), config=text_only)
    event = only(notices).to_event(EMITTED)
    assert event.score == event.components["text"] == 1.0  # the vectorised score and the explanation agree


@pytest.mark.parametrize(
    ("asking", "expected"),
    [({"amount": "3000000", "currency": "CNY"}, 1.0), (None, 0.7), ({"amount": "5250000", "currency": "CNY"}, 0.5)],
)
def test_price_component(asking: dict[str, str] | None, expected: float) -> None:
    over = {"asking_price": asking} if asking else {}
    the_offer = offer(**over) if asking else offer().model_copy(update={"asking_price": None})
    _, notices = run(the_offer, demand())
    assert component(notices, "price") == pytest.approx(expected)


def test_a_price_in_another_currency_than_the_budget_is_also_given_in_the_budgets() -> None:
    _, notices = run(offer(asking_price={"amount": "400000", "currency": "USD"}), demand())
    event = only(notices).to_event(EMITTED)
    assert event.facts is not None and event.facts.asking_in_budget_currency is not None
    converted = event.facts.asking_in_budget_currency
    assert converted.currency == "CNY" and 400_000 < converted.amount < 5_000_000
    assert f"报价400,000 USD（约{converted.amount:,.0f} CNY），在预算内（预算上限5,000,000 CNY）" in event.reasons
    _, notices = run(offer(), demand())
    assert "报价3,000,000 CNY，在预算内（预算上限5,000,000 CNY）" in only(notices).to_event(EMITTED).reasons


def test_price_does_not_apply_without_a_budget() -> None:
    _, notices = run(offer(), demand().model_copy(update={"budget": None}))
    event = only(notices).to_event(EMITTED)
    assert "price" not in event.components and "报价3,000,000 CNY" in event.reasons  # the price is still said


def test_strength_prefers_granted_inventions() -> None:
    _, strong = run(offer(), demand())
    _, weak = run(offer(patents=[patent(kind="utility_model", legal_status="pending", claims_count=2)]),
                  demand(require_granted=False))  # fmt: skip
    assert component(strong, "strength") > component(weak, "strength")


@pytest.mark.parametrize(("region", "expected"), [("CN-BJ", 1.0), ("CN-SH", 0.5), ("US-CA", 0.0)])
def test_region_component(region: str, expected: float) -> None:
    seller = {"party_id": "s", "name": "s", "kind": "enterprise", "region": region}
    _, notices = run(offer(seller=seller), demand())
    assert component(notices, "region") == expected


def test_freshness_halves_every_half_life() -> None:
    _, notices = run(offer(minute=0), demand(minute=180 * 24 * 60))
    assert component(notices, "freshness") == pytest.approx(0.5, abs=1e-6)


def test_weights_and_threshold_are_configurable() -> None:
    text_only = MatchingConfig(weights=Weights(field=0, text=1, price=0, strength=0, region=0, freshness=0))
    _, notices = run(offer(), demand(), config=text_only)
    event = only(notices).to_event(EMITTED)
    assert event.score == pytest.approx(event.components["text"], abs=1e-6)
    strict, _ = run(offer(), demand(), config=MatchingConfig(min_score=0.99))
    assert pairs(strict) == set()


def test_financing_matches_a_pledge_loan_with_a_lender() -> None:
    engine, notices = run(lender(), request())
    assert pairs(engine) == {("financing", "r1", "bank1", None)}
    event = only(notices).to_event(EMITTED)
    assert event.facts is not None and event.facts.loan_to_value == pytest.approx(0.375)
    assert "申请金额1,500,000 CNY，在bank1的授信区间内（500,000–10,000,000 CNY）" in event.reasons
    assert "质押率38%（上限50%）" in event.reasons
    assert "同一国家（CN）" in event.reasons and event.reasons[-1].startswith("专利价值指数")


def test_a_financing_reason_gives_the_ticket_range_and_the_amount_in_its_currency() -> None:
    usd_fund = lender(
        "fund1", intent="invest", description="Equity in battery start-ups",
        budget={"max": "2000000", "currency": "USD"}, max_loan_to_value=None, regions_served=[],
    )  # fmt: skip
    _, notices = run(usd_fund, request(instrument="equity"))
    event = only(notices).to_event(EMITTED)
    cny = MatchingConfig().cny_per_unit["USD"]
    assert (
        f"Amount 1,500,000 CNY (about {1_500_000 / cny:,.0f} USD) within fund1's ticket range (up to 2,000,000 USD)"
        in event.reasons
    )


@pytest.mark.parametrize(
    "lender_over",
    [
        {"max_loan_to_value": 0.3},
        {"regions_served": ["CN-SH"]},
        {"budget": {"min": "2000000", "max": "9000000", "currency": "CNY"}},
        {"intent": "invest", "max_loan_to_value": None, "regions_served": []},
    ],
    ids=["loan-to-value", "region-served", "ticket-range", "instrument"],
)
def test_financing_filters(lender_over: dict[str, Any]) -> None:
    engine, _ = run(lender(**lender_over), request())
    assert pairs(engine) == set()


MANY_REGIONS = ["CN-AH", "CN-FJ", "CN-GD", "CN-HB", "CN-SC"]  # more than a lender's served-region columns


@pytest.mark.parametrize("lender_first", [True, False])
@pytest.mark.parametrize(
    ("regions_served", "serves"),
    [
        (["CN"], True),
        (["CN-JS"], True),
        (["CN-SH", "CN-ZJ"], False),
        ([*MANY_REGIONS, "CN-JS"], True),
        ([*MANY_REGIONS, "CN-ZJ", "CN"], True),
        ([*MANY_REGIONS, "CN-ZJ"], False),
        (["US-CA", "US"], False),
    ],
)
def test_a_lender_serves_its_regions_and_the_regions_of_its_countries(
    lender_first: bool, regions_served: list[str], serves: bool
) -> None:
    """Whichever arrives first (the request checks every lender at once, a lender every request), and
    however many regions a lender lists."""
    events = [lender(regions_served=regions_served), request()]  # the applicant is in CN-JS
    engine, _ = run(*(events if lender_first else events[::-1]))
    assert pairs(engine) == ({("financing", "r1", "bank1", None)} if serves else set())


def test_equity_requests_meet_investors() -> None:
    investor = lender("fund1", intent="invest", max_loan_to_value=None, regions_served=[], ipc=["H01M"])
    engine, _ = run(investor, request(instrument="equity"))
    assert pairs(engine) == {("financing", "r1", "fund1", None)}


def test_a_bridge_finances_the_gap_between_budget_and_price() -> None:
    engine, notices = run(offer(asking_price={"amount": "6000000", "currency": "CNY"}), lender(), demand(minute=5))
    assert pairs(engine) == {("bridge", "d1", "o1", "bank1")}
    event = only(notices).to_event(EMITTED)
    assert event.financier is not None and event.financier.id == "bank1"
    assert event.facts is not None and event.facts.gap is not None and event.facts.gap.amount == 1_000_000
    assert "报价6,000,000 CNY，超出预算1,000,000 CNY（预算上限5,000,000 CNY），可由bank1融资补足" in event.reasons


def test_a_lender_arriving_later_creates_the_bridge_and_leaving_revokes_it() -> None:
    engine, _ = run(offer(asking_price={"amount": "6000000", "currency": "CNY"}), demand())
    assert pairs(engine) == set()
    notices = engine.apply(lender(minute=10)).notices
    assert pairs(engine) == {("bridge", "d1", "o1", "bank1")} and only(notices).candidate.kind == "bridge"
    notices = engine.apply(lender(minute=11, version=2, status="withdrawn")).notices
    assert only(notices, "revoke").reason == "withdrawn" and pairs(engine) == set()


@pytest.mark.parametrize("shards", [1, 2])
def test_a_nearer_lender_arriving_later_takes_the_bridge_over(shards: int) -> None:
    far = lender("bank0", buyer={"party_id": "bank-sh", "name": "上海银行", "kind": "bank", "region": "CN-SH"})
    engine, _ = run(offer(asking_price={"amount": "6000000", "currency": "CNY"}), far, demand(minute=5), shards=shards)
    assert pairs(engine) == {("bridge", "d1", "o1", "bank0")}
    notices = engine.apply(lender("bank9", minute=10)).notices  # in the buyer's own region: nearer
    assert pairs(engine) == {("bridge", "d1", "o1", "bank9")}
    assert only(notices, "revoke").reason == "superseded" and only(notices).candidate.financier_id == "bank9"
    # One farther still changes nothing.
    farther = lender("bank1", minute=11, buyer={"party_id": "bank-hk", "name": "HK", "kind": "bank", "region": "HK"})
    assert engine.apply(farther).notices == [] and pairs(engine) == {("bridge", "d1", "o1", "bank9")}
    # As near as the financier in place: the smaller id ranks first, a larger one changes nothing.
    notices = engine.apply(lender("bank5", minute=12)).notices
    assert pairs(engine) == {("bridge", "d1", "o1", "bank5")} and only(notices).candidate.financier_id == "bank5"
    assert engine.apply(lender("bank7", minute=13)).notices == [] and pairs(engine) == {("bridge", "d1", "o1", "bank5")}


def test_withdrawal_revokes() -> None:
    engine, _ = run(offer(), demand())
    notices = engine.apply(offer(minute=5, version=2, status="withdrawn")).notices
    assert only(notices, "revoke").reason == "withdrawn" and pairs(engine) == set()


def test_an_update_that_breaks_the_fit_revokes() -> None:
    engine, _ = run(offer(), demand())
    notices = engine.apply(offer(minute=5, version=2, asking_price={"amount": "9000000", "currency": "CNY"})).notices
    assert only(notices, "revoke").reason == "updated-no-longer-fits"


def test_an_update_that_still_fits_is_announced_again_under_the_same_id() -> None:
    engine, first = run(offer(), demand())
    notices = engine.apply(offer(minute=5, version=2, keywords=["锂离子电池", "正极材料", "热稳定性"])).notices
    again = only(notices)
    assert again.candidate.match_id == only(first).candidate.match_id
    assert again.candidate.counterpart_version == 2 and not [n for n in notices if n.type == "revoke"]


def test_expiry_revokes_once_event_time_passes_it() -> None:
    engine, _ = run(offer(expires=30), demand(minute=1))
    assert pairs(engine) == {("transaction", "d1", "o1", None)}
    notices = engine.apply(demand("d2", minute=31, description="无关的需求", ipc=["A61K"])).notices
    assert only(notices, "revoke").reason == "expired" and ("transaction", "d1", "o1", None) not in pairs(engine)


def test_a_better_offer_supersedes_and_the_next_best_refills() -> None:
    config = MatchingConfig(top_k=1)
    engine, _ = run(offer("o1", asking_price={"amount": "4900000", "currency": "CNY"}), demand(), config=config)
    better = offer("o2", minute=5, seller={"party_id": "s2", "name": "s", "kind": "enterprise", "region": "CN-BJ"})
    notices = engine.apply(better).notices
    assert only(notices, "revoke").reason == "superseded" and only(notices).candidate.counterpart_id == "o2"
    notices = engine.apply(offer("o2", minute=6, version=2, status="withdrawn")).notices
    assert only(notices, "revoke").reason == "withdrawn" and only(notices).candidate.counterpart_id == "o1"


def test_collateral_named_by_number_waits_for_the_patent_to_be_seen() -> None:
    engine, _ = run(lender(), request(collateral=[{"number": "CN114514340B"}]))
    assert pairs(engine) == set()
    engine.apply(offer(minute=10))
    assert ("financing", "r1", "bank1", None) in pairs(engine)
    notices = engine.apply(offer(minute=11, version=2, status="withdrawn")).notices
    assert only(notices, "revoke").candidate.kind == "financing"


def test_english_text_only_demand_finds_an_english_offer_with_english_reasons() -> None:
    sensor = patent("US11402341B2", title="Low-power MEMS metal-oxide gas sensor", language="en",
                    abstract="A gas sensor with a micro-heater for battery-powered air-quality monitors.",
                    ipc=["G01N 27/12"])  # fmt: skip
    engine, notices = run(
        offer(patents=[sensor], keywords=["gas sensor"], deal_types=["non_exclusive_license"]),
        demand(intent="license", ipc=[], description="License a low-power gas sensor for air-quality monitors"),
    )
    assert pairs(engine) == {("transaction", "d1", "o1", None)}
    event = only(notices).to_event(EMITTED)
    assert "sensor" in event.matched_terms and any(r.startswith("Description matches") for r in event.reasons)
    assert "Asking 3,000,000 CNY, within budget (max 5,000,000 CNY)" in event.reasons
    _, notices = run(
        offer(
            patents=[sensor], deal_types=["non_exclusive_license"], asking_price={"amount": "50000", "currency": "EUR"}
        ),
        demand(intent="license", ipc=[], description="License a low-power gas sensor for air-quality monitors"),
    )
    event = only(notices).to_event(EMITTED)
    assert event.facts is not None and event.facts.asking_in_budget_currency is not None
    converted = f"{event.facts.asking_in_budget_currency.amount:,.0f} CNY"
    assert f"Asking 50,000 EUR (about {converted}), within budget (max 5,000,000 CNY)" in event.reasons


def test_a_chinese_text_only_demand_finds_the_right_offer_among_others() -> None:
    sensor = patent(
        "CN113281453B", title="一种MEMS微热板气体传感器", abstract="金属氧化物敏感层，功耗低", ipc=["G01N 27/12"]
    )
    engine, _ = run(
        offer("battery"),
        offer("sensor", patents=[sensor], keywords=["气体传感器"]),
        demand(ipc=[], description="需要低功耗气体传感器技术，用于空气净化器"),
    )
    assert {p[2] for p in pairs(engine)} == {"sensor"}


@pytest.mark.parametrize("shards", [1, 2])
def test_an_explanation_read_from_the_triggers_scores_is_the_one_scoring_the_pair_again_gives(shards: int) -> None:
    """A match an event makes is explained from the parts its scoring computed (``Shard.fresh_fit``);
    any other, by scoring the pair again. Both must say the same, to the last digit shown."""
    engine = Engine(MatchingConfig(), shards=shards)
    read_from_scores = 0
    for event in [to_event(d) for d in Market(11).lifecycle(700, updates=0.2, withdrawals=0.1)]:
        for notice in engine.apply(event).notices:
            c = notice.candidate
            if notice.type != "match" or c.kind == "financing":
                continue
            home, owner = engine.shards[0], next(s for s in engine.shards if s.owns_offer(c.counterpart_id))
            buyer, listing = home.entity("demand", c.seeker_id), owner.entity("offer", c.counterpart_id)
            financier = home.entity("demand", c.financier_id) if c.financier_id else None
            read_from_scores += owner.fresh_fit(buyer, listing) is not None
            expected = explain_offer(buyer, listing, financier, engine.config)
            if c.inferred_field is not None:  # as the service's merger adds it to a shard's explanation
                parts, reasons, codes = with_inferred_field(
                    expected.components, expected.reasons, c.inferred_field, c.field_codes.codes
                )
                expected = replace(expected, components=parts, reasons=tuple(reasons), matched_ipc=tuple(codes))
            assert notice.explanation == expected
    assert read_from_scores > 200


def test_an_engine_read_back_from_a_pickle_matches_as_the_one_saved() -> None:
    """``bench.engine --book-file`` saves a built engine and times triggers on it read back. What a shard
    keeps of the last event's scoring is not saved, and is not needed."""
    events = [to_event(d) for d in Market(5).lifecycle(400)]
    engine = Engine()
    for event in events[:300]:
        engine.apply(event)
    copy = pickle.loads(pickle.dumps(engine))
    assert not copy.shards[0]._scored and engine.shards[0]._scored
    for event in events[300:]:
        assert copy.apply(event).notices == engine.apply(event).notices


def test_repeated_and_stale_events_change_nothing() -> None:
    first = offer()
    engine, _ = run(first, demand())
    assert engine.apply(first).outcome == "duplicate"
    newer = offer(minute=3, version=3)
    engine.apply(newer)
    result = engine.apply(offer(minute=4, version=2, status="withdrawn"))
    assert result.outcome == "stale" and not result.notices and pairs(engine)


def test_the_same_events_twice_give_the_same_outputs() -> None:
    from matcher.market import Market, to_event

    events = [to_event(d) for d in Market(7).lifecycle(150)]
    outputs = []
    for _ in range(2):
        _, notices = run(*events)
        outputs.append([n.to_event(EMITTED).model_dump_json() for n in notices])
    assert outputs[0] == outputs[1] and len(outputs[0]) > 50


def test_a_closed_entitys_version_is_kept_for_the_retention_then_forgotten() -> None:
    """Within the tombstone retention an older version cannot reopen a withdrawn offer; after it, the
    book has let the offer go (memory freed) and says so."""
    one_hour = MatchingConfig(tombstone_retention_days=1 / 24)
    engine, _ = run(offer(), demand(), offer(minute=5, version=3, status="withdrawn"), config=one_hour)
    book = engine.shards[0].book
    assert engine.apply(offer(minute=30, version=2)).outcome == "stale" and book.tombstones() == 1
    later = engine.apply(demand("d2", minute=66, description="无关的需求", ipc=["A61K"]))
    assert later.forgotten == (("offer", "o1"),) and book.tombstones() == 0
    assert engine.apply(offer(minute=70, version=2)).outcome == "accepted"


def test_a_long_log_keeps_the_recent_tombstones_only_and_still_equals_the_oracle() -> None:
    from matcher.market import Market, to_event
    from matcher.oracle import oracle_matches
    from schemas import entity_id

    events = [to_event(d) for d in Market(12).lifecycle(600, withdrawals=0.3, expiring=0.5)]
    engine, _ = run(*events, config=MatchingConfig(tombstone_retention_days=0.05))
    book = engine.shards[0].book
    closed = len({(type(e).__name__, entity_id(e)) for e in events}) - len(book.open)
    assert 0 < book.tombstones() < closed / 2
    assert engine.open_matches() == oracle_matches(events)


CURRENCIES = ["CNY", "USD", "EUR", "JPY", "KRW"]
AMOUNTS = st.one_of(
    st.sampled_from(["0.000001", "0.001", "0.004", "1", "909.09", "1000", "999999999999999", "1e15"]),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("1e15"), places=6).map(str),
)


@settings(max_examples=150, deadline=None)
@example(asking="0.001", asking_currency="USD", budget="5000000", budget_currency="EUR",
         ticket="1e7", appraised=["1e15", "1e15"], requested="1500000")  # fmt: skip
@given(
    asking=AMOUNTS, asking_currency=st.sampled_from(CURRENCIES),
    budget=AMOUNTS, budget_currency=st.sampled_from(CURRENCIES),
    ticket=AMOUNTS, appraised=st.lists(AMOUNTS, min_size=1, max_size=3), requested=AMOUNTS,
)  # fmt: skip
def test_every_valid_amount_is_explained_however_small_or_large(
    asking: str, asking_currency: str, budget: str, budget_currency: str,
    ticket: str, appraised: list[str], requested: str,
) -> None:  # fmt: skip
    """A price of a fraction of a cent in the buyer's currency, or collateral worth more than one Money
    can hold, once made the explanation raise, and with it the worker, on valid input."""
    collateral = [
        patent(f"CN2000000{i}B", appraised_value={"amount": value, "currency": "CNY"})
        for i, value in enumerate(appraised)
    ]
    _, notices = run(
        offer(asking_price={"amount": asking, "currency": asking_currency}),
        demand(budget={"max": budget, "currency": budget_currency}),
        lender(budget={"max": ticket, "currency": "CNY"}, max_loan_to_value=None),
        request(amount={"amount": requested, "currency": "CNY"}, collateral=collateral),
    )
    for notice in notices:
        event = notice.to_event(EMITTED)
        assert all(
            money is None or money.amount > 0 for money in dict(event.facts).values() if not isinstance(money, float)
        )
        # The facts as a worker puts them on the wire, without the model, are what the model writes.
        assert notice.explanation is not None and event.facts is not None
        assert notice.explanation.facts.to_json() == event.facts.model_dump(mode="json", exclude_none=True)


def test_no_pair_scores_above_its_bound_and_the_bound_is_tight() -> None:
    """The bound that lets a large book's top K skip offers (and percolation skip demands) must never
    be under a score, even after rounding; and where price, region and freshness are at their best it
    equals the score, so a bound with less slack would fail here."""
    engine = Engine()
    for document in Market(11).listings(400):
        engine.apply(to_event(document))
    shard = engine.shards[0]
    margins = []
    for buyer in shard.buyers.entities.values():
        slots, text_raw, field = shard.offers.on_topic(buyer.query, buyer.codes)
        if not len(slots):
            continue
        d = {name: np.asarray(value) for name, value in shard._buyer_values(buyer).items()}
        o = {name: shard.offers.table.cols[name][slots] for name in OFFER_COLUMNS}
        scores = transaction_scores(d, o, territory_ok=True, text_raw=text_raw, field=field, config=engine.config)
        bound = transaction_score_bounds(d, o["strength"], text_raw=text_raw, field=field, config=engine.config)
        margins.extend((bound - scores.score)[scores.ok].tolist())
    assert len(margins) > 500
    assert min(margins) >= 0
    assert min(margins) <= BOUND_SLACK


_NEAR_THE_GATE = st.floats(0.0, 1.0).map(lambda share: share * 0.18)  # shares from 0 to twice the gate's


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_NEAR_THE_GATE, min_size=1, max_size=30),
    st.sampled_from([0.0, 1e-300, 0.37, 1.0, 3.7, 55.123456789, 1e6]),
)
@example([SHARE_ON_TOPIC, math.nextafter(SHARE_ON_TOPIC, 0.0), TOPICAL_TEXT**2], 1.0)
def test_the_text_gate_on_shares_is_the_gate_on_the_text_part(shares: list[float], qnorm: float) -> None:
    """A large book's top K gates the text of every offer on topic by the share of the query's norm it
    finds (no square root): it must let through exactly the offers whose text part reaches the gate."""
    text_raw = np.array(shares) * qnorm
    text_raw = np.concatenate(
        [text_raw, [math.nextafter(x, 0.0) for x in text_raw], [math.nextafter(x, 9.0) for x in text_raw]]
    )
    d = {"qnorm": np.asarray(qnorm), "has_codes": np.asarray(False), "deal": np.asarray(1),
         "require_granted": np.asarray(False), "has_budget": np.asarray(False), "bmax": np.asarray(np.nan),
         "rate_known": np.asarray(True)}  # fmt: skip
    o = {"deal": np.ones(len(text_raw), dtype=np.int64), "granted": True, "price": np.nan, "rate_known": True}
    gate = fits_on_few_columns(d, o, text_raw=text_raw, field=np.zeros(len(text_raw)), config=MatchingConfig())
    with np.errstate(invalid="ignore", divide="ignore"):
        text = np.where(qnorm > 0, np.sqrt(np.minimum(1.0, text_raw / (qnorm if qnorm > 0 else 1.0))), 0.0)
    assert np.array_equal(np.broadcast_to(gate, text.shape), text >= TOPICAL_TEXT)


def test_a_trigger_leaves_the_books_indexes_to_the_old_generation() -> None:
    """The cyclic collector's young collections must not walk the book. A dict of strings and ints is
    never tracked; one keyed by (kind, id) tuples, once a full collection has untracked it, is tracked
    again by the next new key and walked whole by the next young collections: at a 100k book, pauses of
    10+ ms in the middle of a trigger. So after a full collection, a trigger of each kind may leave only
    small containers in the young generations."""
    engine = Engine()
    market = Market(5)
    for document in market.listings(3000):
        engine.load(entity_from_event(to_event(document), engine.analyzer, engine.config))
    engine.rebuild_views()
    makers = (market.offer, market.buyer, market.request, market.financier)
    for make in makers:  # lazily loaded tables (jieba's, the region codes) settle first
        engine.apply(to_event(make()))
    gc.collect()
    gc.disable()
    try:
        for make in makers:
            engine.apply(to_event(make()))
        young = gc.get_objects(0) + gc.get_objects(1)
        biggest = max(young, key=lambda o: len(gc.get_referents(o)))
        assert len(gc.get_referents(biggest)) < 1000, type(biggest)
    finally:
        gc.enable()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 30), st.floats(0.01, 20.0)), max_size=20, unique_by=lambda p: p[0]),
        max_size=12,
    )
)
def test_posting_weights_are_summed_in_the_order_of_the_terms(terms: list[list[tuple[int, float]]]) -> None:
    """The one-pass sum of the postings gives, bit for bit, the running sum term by term that it replaced
    (a different order of additions would move scores in their last bits, and ties with them)."""
    postings = [(np.array([s for s, _ in term], dtype=np.int64), np.array([w for _, w in term])) for term in terms]
    postings = [(slots, weights) for slots, weights in postings if len(slots)]
    running = np.zeros(31)
    for slots, weights in postings:
        running[slots] += weights
    summed = _summed([s for s, _ in postings], [w for _, w in postings], 31)
    assert np.array_equal(summed, running)
