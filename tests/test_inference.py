"""The field of a demand that names no IPC codes, inferred from its best candidates (matcher.inference):
how it ranks a pool, how it is explained, and that the service's merger explains it as the engine does."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from matcher import Candidate, Engine, MatchingConfig
from matcher.inference import _summed_closeness, closeness_by_level, closeness_to_voters, open_ranking, reranked
from matcher.ipc import field_codes
from matcher.scoring import field_score, round_score
from tests.builders import demand, offer, patent
from tests.test_stages import run_stages

EMITTED = datetime(2026, 3, 2, tzinfo=UTC)
TEXT_ONLY = 0.65  # text 0.30 + price 0.15 + strength 0.10 + region 0.05 + freshness 0.05


def candidate(offer_id: str, score: float, code: str, weight: float = TEXT_ONLY) -> Candidate:
    return Candidate("transaction", "demand", "d1", 1, "offer", offer_id, 1, None, None, score,
                     field_codes=field_codes((code,) if weight else ()), inference_weight=weight)  # fmt: skip


POOL = [
    candidate("a", 0.80, "G01N 27/12"),
    candidate("b", 0.78, "G01N 27/12"),
    candidate("c", 0.76, "H01M 10/05"),  # a word shared by chance: another section
    candidate("d", 0.70, "G01N 27/14"),  # the voters' main group
    candidate("e", 0.69, "G01N 27/12"),
    candidate("f", 0.60, "A61K 9/00"),
]
CONFIG = MatchingConfig(top_k=3, inference_pool=6, inference_votes=3)
CODES = st.sampled_from(
    ["G01N", "G01N 27/00", "G01N 27/12", "G01N 27/14", "G01N 33/00", "G01M 3/02", "G06F 17/30", "H01M 10/05", "H01M"]
)
VOTES = st.lists(st.lists(CODES, min_size=1, max_size=4), min_size=1, max_size=5)


def test_the_best_candidates_vote_with_their_codes_and_the_field_joins_the_score() -> None:
    ranked = open_ranking(POOL, CONFIG)
    inferred = {  # the mean closeness to the voters a, b (G01N 27/12) and c (H01M 10/05), to one decimal
        "a": round((1.0 + 1.0 + 0.0) / 3, 1),
        "b": round((1.0 + 1.0 + 0.0) / 3, 1),
        "c": round((0.0 + 0.0 + 1.0) / 3, 1),
        "d": round((0.8 + 0.8 + 0.0) / 3, 1),  # the main group of a and b
        "e": round((1.0 + 1.0 + 0.0) / 3, 1),
        "f": 0.0,
    }
    final = {
        p.counterpart_id: round_score((p.score * TEXT_ONLY + 0.35 * inferred[p.counterpart_id]) / (TEXT_ONLY + 0.35))
        for p in POOL
    }
    assert [c.counterpart_id for c in ranked] == ["a", "b", "e"]  # c, a word shared by chance, falls behind
    assert final["c"] < final["d"] < final["e"]
    for c in ranked:
        assert c.inferred_field == inferred[c.counterpart_id]
        assert c.score == final[c.counterpart_id]
        assert c.match_id == next(p.match_id for p in POOL if p.counterpart_id == c.counterpart_id)


@given(VOTES, st.lists(CODES, min_size=1, max_size=4))
@example(votes=[["G01N"], ["G01M 3/02"]], codes=["G06F 17/30"])  # one level shared, with both voters
def test_closeness_to_each_voter_off_its_levels_is_the_field_part(votes: list[list[str]], codes: list[str]) -> None:
    by_level = closeness_by_level([field_codes(tuple(v)) for v in votes])
    candidate_codes = field_codes(tuple(codes))
    tenths = closeness_to_voters(by_level, candidate_codes, len(votes))
    assert [t / 10 for t in tenths] == [field_score(voter, codes) for voter in votes]
    assert _summed_closeness(by_level, candidate_codes) == round(sum(field_score(voter, codes) for voter in votes) * 10)


def test_a_candidate_the_field_brings_below_the_threshold_is_not_a_match() -> None:
    ranked = open_ranking(POOL, CONFIG.model_copy(update={"min_score": 0.70}))
    assert [(c.counterpart_id, c.score >= 0.70) for c in ranked] == [("a", True), ("b", True)]


def test_only_the_pool_is_ranked_and_a_seeker_naming_codes_keeps_its_first_k() -> None:
    shallow = open_ranking(POOL, CONFIG.model_copy(update={"inference_pool": 4}))
    assert [c.counterpart_id for c in shallow] == ["a", "b", "d"]  # e lies beyond the pool
    named = [candidate(c.counterpart_id, c.score, "", weight=0.0) for c in POOL]
    assert open_ranking(named, CONFIG) == named[:3]
    assert all(c.inferred_field is None for c in open_ranking(named, CONFIG))


POOLS = st.lists(st.tuples(st.integers(30, 100), CODES), min_size=0, max_size=12, unique_by=lambda entry: entry[0])


def pool_of(entries: list[tuple[int, str]], prefix: str) -> list[Candidate]:
    """Candidates best first, with scores in hundredths (distinct, so no tie depends on the names)."""
    ranked = sorted(entries, reverse=True)
    return [candidate(f"{prefix}{score}", score / 100, code) for score, code in ranked]


@given(POOLS, POOLS, st.sets(st.integers(0, 11)), st.sampled_from([(6, 3), (4, 2), (8, 8), (3, 1)]))
def test_a_pool_ranked_again_from_its_last_ranking_ranks_as_it_would_from_scratch(
    kept: list[tuple[int, str]], arriving: list[tuple[int, str]], leaving: set[int], sizes: tuple[int, int]
) -> None:
    config = CONFIG.model_copy(update={"inference_pool": sizes[0], "inference_votes": sizes[1]})
    before = pool_of(kept, "k")
    after = sorted(
        [c for i, c in enumerate(before) if i not in leaving] + pool_of(arriving, "n"), key=lambda c: c.order
    )
    again = reranked(before, open_ranking(before, config), after, config)
    assert [(c.match_id, c.score, c.inferred_field) for c in again] == [
        (c.match_id, c.score, c.inferred_field) for c in open_ranking(after, config)
    ]


def sensor(number: str, ipc: str, language: str = "zh") -> dict[str, object]:
    if language == "en":
        return patent(number, title="Low-power MEMS metal-oxide gas sensor", language="en",
                      abstract="A gas sensor with a micro-heater for air-quality monitors.", ipc=[ipc])  # fmt: skip
    return patent(number, title="一种MEMS微热板气体传感器", abstract="金属氧化物敏感层，功耗低", ipc=[ipc])


def test_a_text_only_match_is_explained_by_its_inferred_field_in_the_demands_language() -> None:
    engine = Engine()
    engine.apply(offer("sensor", patents=[sensor("CN113281453B", "G01N 27/12")], keywords=["气体传感器"]))
    notices = engine.apply(demand(ipc=[], description="需要低功耗气体传感器技术，用于空气净化器")).notices
    (match,) = [n for n in notices if n.type == "match"]
    event = match.to_event(EMITTED)
    assert event.components["field"] == 1.0  # its only voter is itself
    assert event.reasons[0] == "技术领域推断吻合：G01N 27/12（与最相近的专利同一技术小组）"
    assert event.matched_ipc == ["G01N 27/12"]

    english = Engine()
    english.apply(offer("sensor", patents=[sensor("US11402341B2", "G01N 27/12", "en")], keywords=["gas sensor"]))
    text_only = demand(intent="acquire", ipc=[], description="A low-power gas sensor for air-quality monitors")
    (match,) = [n for n in english.apply(text_only).notices if n.type == "match"]
    reasons = match.to_event(EMITTED).reasons
    assert reasons[0] == "Field inferred from the closest patents: G01N 27/12 (same subgroup)"


def test_a_demand_naming_codes_has_no_field_inferred() -> None:
    engine = Engine()
    engine.apply(offer("sensor", patents=[sensor("CN113281453B", "G01N 27/12")], keywords=["气体传感器"]))
    notices = engine.apply(demand(ipc=["G01N 27/14"], description="需要低功耗气体传感器技术")).notices
    (match,) = [n for n in notices if n.type == "match"]
    assert match.candidate.inferred_field is None
    assert not any(reason.startswith("技术领域推断") for reason in match.to_event(EMITTED).reasons)


def test_a_pool_of_zero_turns_the_inference_off() -> None:
    engine = Engine(MatchingConfig(inference_pool=0))
    engine.apply(offer("sensor", patents=[sensor("CN113281453B", "G01N 27/12")], keywords=["气体传感器"]))
    notices = engine.apply(demand(ipc=[], description="需要低功耗气体传感器技术，用于空气净化器")).notices
    (match,) = [n for n in notices if n.type == "match"]
    event = match.to_event(EMITTED)
    assert match.candidate.inference_weight == 0 and match.candidate.inferred_field is None
    assert "field" not in event.components and event.matched_ipc == []


def test_the_services_merger_explains_an_inferred_field_as_the_engine_does() -> None:
    offers = [
        offer(f"s{i}", minute=i, patents=[sensor(f"CN11328145{i}B", code)], keywords=["气体传感器"])
        for i, code in enumerate(["G01N 27/12", "G01N 27/12", "G01N 27/14", "H01M 10/05"])
    ]
    wanted = demand(ipc=[], minute=10, description="需要低功耗气体传感器技术，用于空气净化器")
    events = [*offers, wanted]
    engine = Engine()
    expected = {}
    for event in events:
        for notice in engine.apply(event).notices:
            expected[notice.candidate.match_id] = orjson.loads(notice.to_event(EMITTED).model_dump_json())
    _, _, published = run_stages([orjson.loads(e.model_dump_json()) for e in events])
    explained = ("score", "rank", "components", "reasons", "matched_ipc", "matched_terms")
    last = {event["match_id"]: event for event in published}
    assert len(last) == 4 and set(last) == set(expected)
    for match_id, event in last.items():
        assert event["components"]["field"] > 0
        assert {k: event[k] for k in explained} == {k: expected[match_id][k] for k in explained}
