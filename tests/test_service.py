"""The service end to end, on the real broker: worker processes, public topics, nothing mocked."""

from __future__ import annotations

import asyncio
import signal

import orjson
import pytest

from matcher.market import Market
from schemas import MatchEvent
from streams.examples import decode_example, example_events
from streams.harness import (
    dead_letters,
    eventually,
    health_until_ready,
    market_events,
    market_records,
    matches,
    prepare,
    publish,
    records_of,
    settle_on_oracle,
)
from streams.kafka_io import partition_count, read_to_end
from streams.supervision import Deployment
from tests.builders import demand, lender, offer, request


def by_pair(events: list[dict[str, object]]) -> dict[tuple[str, str], list[MatchEvent]]:
    out: dict[tuple[str, str], list[MatchEvent]] = {}
    for raw in events:
        event = MatchEvent.model_validate(raw)
        out.setdefault((event.seeker.id, event.counterpart.id), []).append(event)
    return out


async def test_each_kind_of_match_arrives_explained(deployment: Deployment) -> None:
    await prepare(deployment)
    deployment.start_worker()
    examples = [decode_example(e) for e in example_events()]
    bridge = [
        offer("o-bridge", asking_price={"amount": "6000000", "currency": "CNY"}),
        lender("bank-bridge"),
        demand("d-bridge", minute=5),
    ]
    events = [e for e in examples if not isinstance(e, Exception)] + bridge
    await publish(deployment, records_of(deployment, events))  # type: ignore[arg-type]
    await settle_on_oracle(deployment, events)  # type: ignore[arg-type]
    found = by_pair(await matches(deployment))

    # A demand written in Chinese with no IPC codes finds the battery portfolio by its text alone.
    automaker = found[("demand-bjauto-battery-2026-01", "offer-jsbattery-2026-001")][-1]
    assert automaker.kind == "transaction" and automaker.rank == 1
    assert any("需求描述命中" in r for r in automaker.reasons) and "锂离子" in automaker.matched_terms
    pledge = found[("fin-jsbattery-pledge-2026", "demand-bjbank-pledge-2026")][-1]
    assert pledge.kind == "financing" and pledge.facts is not None and pledge.facts.loan_to_value is not None
    bridged = found[("d-bridge", "o-bridge")][-1]
    assert bridged.kind == "bridge" and bridged.financier is not None and bridged.financier.id == "bank-bridge"
    assert bridged.facts is not None and bridged.facts.gap is not None


async def test_update_withdrawal_and_expiry_revoke(deployment: Deployment) -> None:
    await prepare(deployment)
    deployment.start_worker()
    first = [offer("o1"), demand("d1"), offer("o2", expires=30), demand("d2"), lender("bank1"), request("r1")]
    changes = [
        offer("o1", minute=10, version=2, patents=[_unrelated_patent()], keywords=["咖啡机"]),
        lender("bank1", minute=11, version=2, status="withdrawn"),
        demand("d3", minute=40),  # its time moves the watermark past o2's expiry
    ]
    await publish(deployment, records_of(deployment, first))
    await settle_on_oracle(deployment, first)
    await publish(deployment, records_of(deployment, changes))
    await settle_on_oracle(deployment, first + changes)
    revokes = {e["seeker"]["id"] + "/" + e["counterpart"]["id"]: e["reason"]
               for e in await matches(deployment) if e["type"] == "revoke"}  # fmt: skip
    assert revokes["d1/o1"] == "updated-no-longer-fits"
    assert revokes["r1/bank1"] == "withdrawn"
    assert revokes["d1/o2"] == "expired"


def _unrelated_patent() -> dict[str, object]:
    from tests.builders import patent

    return patent(
        "CN300000001B", title="一种咖啡机的蒸汽喷嘴", abstract="咖啡机蒸汽喷嘴的防堵结构。", ipc=["A47J 31/44"]
    )


async def test_bad_records_are_dead_lettered_and_matching_goes_on(deployment: Deployment) -> None:
    await prepare(deployment)
    deployment.start_worker()
    t = deployment.topics
    good = [offer("o1"), demand("d1")]
    valid = records_of(deployment, good)
    oversize = orjson.dumps({"offer_id": "big", "padding": "x" * (2 * 1024 * 1024)})
    schema_violation = orjson.loads(valid[1][2]) | {"budget": {"max": "-5", "currency": "CNY"}, "colour": "red"}
    bad = [
        (t.offers, b"k1", b'{"offer_id": "o9", "patents": ['),
        (t.demands, b"k2", orjson.dumps(schema_violation)),
        (t.offers, b"k3", oversize),
        (t.financing, b"k4", b"\xff\xfe\x00binary"),
    ]
    await publish(deployment, [valid[0], bad[0], bad[1], bad[2], bad[3], valid[1]])

    async def four_dead_letters() -> bool:
        return len(await dead_letters(deployment)) >= 4

    await eventually(four_dead_letters, timeout_s=60, dep=deployment)
    letters = {d["key"]: d for d in await dead_letters(deployment)}
    assert len(letters) == 4
    assert letters["k1"]["error_kind"] == "decode"
    assert letters["k2"]["error_kind"] == "schema" and letters["k2"]["source_topic"] == t.demands
    assert letters["k3"]["error_kind"] == "too_large" and letters["k3"]["value_truncated"]
    assert letters["k4"]["error_kind"] == "decode" and letters["k4"]["value_encoding"] == "base64"
    await settle_on_oracle(deployment, good)


@pytest.mark.parametrize("shards", [1, 2], ids=["one-shard", "two-shards"])
async def test_after_a_replay_the_open_matches_equal_the_oracle(deployment: Deployment, shards: int) -> None:
    """One shard is what a single worker should run (bench/JOURNAL.md, "one worker on one shard"), and
    it announces directly, without the answers topic; two is the default."""
    deployment.shards = shards
    await prepare(deployment)
    deployment.start_worker()
    documents = Market(11).lifecycle(1200, expiring=0.2)
    await publish(deployment, await market_records(deployment, documents))
    result = await settle_on_oracle(deployment, market_events(documents), timeout_s=180)
    assert result.duplicates == 0
    answers_partitions = await partition_count(deployment.bootstrap, deployment.topics.answers)
    assert answers_partitions == (0 if shards == 1 else deployment.merge_partitions)


@pytest.mark.parametrize(
    ("sig", "shards"),
    [(signal.SIGTERM, 2), (signal.SIGKILL, 2), (signal.SIGKILL, 1)],
    ids=["sigterm", "sigkill", "sigkill-one-shard"],
)
async def test_a_restart_in_the_middle_of_a_replay_loses_nothing(deployment: Deployment, sig: int, shards: int) -> None:
    deployment.shards = shards
    await prepare(deployment)
    worker = deployment.start_worker()
    documents = Market(23).lifecycle(2500, expiring=0.1)
    replay = asyncio.create_task(publish(deployment, await market_records(deployment, documents), rate_per_s=600))

    async def some_matches_out() -> bool:
        return len(await matches(deployment)) > 50

    await eventually(some_matches_out, timeout_s=90, dep=deployment)
    worker.stop(sig)
    deployment.start_worker()
    await replay
    events = market_events(documents)
    result = await settle_on_oracle(deployment, events, timeout_s=240)
    _repeats_are_exact_copies(await matches(deployment))

    # After the restart, a new demand still finds the offers published before it.
    before = {e["seeker"]["id"]: e for e in await matches(deployment) if e["type"] == "match"}
    model = next(d for d in documents if d.get("demand_id") in before and d.get("intent") == "acquire")
    late = {**model, "demand_id": "late-demand", "event_id": "late-demand-e1"}
    await publish(deployment, await market_records(deployment, [late]))
    await settle_on_oracle(deployment, [*events, *market_events([late])], timeout_s=120)
    assert any(e["seeker"]["id"] == "late-demand" for e in await matches(deployment))
    assert result.missing == result.extra == 0


def _repeats_are_exact_copies(events: list[dict[str, object]]) -> None:
    """Two match events with the same match id, versions and score must say the same thing. (The same
    versions may score anew: the field a text-only demand's pool infers, ``matcher.inference``.)"""
    seen: dict[tuple[object, ...], tuple[object, ...]] = {}
    for e in events:
        if e["type"] != "match":
            continue
        c = e["counterpart"]
        s = e["seeker"]
        financier_version = (e.get("financier") or {}).get("version")  # type: ignore[union-attr]
        key = (e["match_id"], s["version"], c["version"], financier_version, e["score"])  # type: ignore[index]
        said = (e["kind"], tuple(e["reasons"]), e["components"])  # type: ignore[arg-type]
        assert seen.setdefault(key, said) == said, f"a repeat of {key} differs"


async def test_a_ready_direct_worker_applies_its_inputs_without_the_shard_log(deployment: Deployment) -> None:
    """Once its one shard is built, a direct worker applies each valid input event at once: the shard
    log, a record more per event for faust and aiokafka to carry, stays empty."""
    deployment.shards = 1
    await prepare(deployment)
    await health_until_ready(deployment.start_worker(), timeout_s=90)
    documents = Market(13).lifecycle(600, expiring=0.2)
    await publish(deployment, await market_records(deployment, documents), rate_per_s=300)
    result = await settle_on_oracle(deployment, market_events(documents), timeout_s=180)
    assert result.duplicates == 0
    assert await read_to_end(deployment.bootstrap, deployment.topics.shard_log) == []


@pytest.mark.parametrize("shards", [1, 2], ids=["one-shard", "two-shards"])
async def test_two_workers_give_the_same_open_matches_as_the_oracle(deployment: Deployment, shards: int) -> None:
    """With one shard, the worker that holds it applies its own inputs at once and the other worker's
    through the shard log: two paths into one book."""
    deployment.shards = shards
    await prepare(deployment)
    deployment.start_worker()
    deployment.start_worker()
    documents = Market(31).lifecycle(1500, expiring=0.1)
    await publish(deployment, await market_records(deployment, documents))
    await settle_on_oracle(deployment, market_events(documents), timeout_s=240)


async def test_a_worker_joining_while_another_is_busy_gives_the_same_open_matches_as_the_oracle(
    deployment: Deployment,
) -> None:
    """The first worker is matching a backlog, and writing the book's changelog, when the second joins:
    it recovers the book again from the changelog at the rebalance. A fetch of its that was waiting
    when the rebalance began once drained that changelog while faust's flow was stopped, and the
    recovery waited for ever (``streams.gaps.GivingBackConsumerThread``; CI, 5 December)."""
    deployment.shards = 1
    await prepare(deployment)
    deployment.start_worker()
    documents = Market(31).lifecycle(1500, expiring=0.1)
    await publish(deployment, await market_records(deployment, documents))
    await asyncio.sleep(1.0)
    deployment.start_worker()
    await settle_on_oracle(deployment, market_events(documents), timeout_s=240)
