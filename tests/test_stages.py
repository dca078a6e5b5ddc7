"""The service's stages as plain objects (no broker): a shard rebuilt from its table answers as the one
that processed the log did, the merger ignores old answers, and shards + merger equal the oracle."""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest

import streams.sharding
from matcher import MatchingConfig
from matcher.market import Market, to_event
from matcher.oracle import oracle_matches
from matcher.text import default_analyzer
from schemas import MatchEvent, encode
from streams.audit import Audit, OutputFold, audit
from streams.harness import shard_log
from streams.merging import Merger
from streams.sharding import (
    ENTITIES_PER_STEP,
    SEEKERS_PER_STEP,
    Answer,
    ShardStage,
    bundle_answers,
    decode_answer,
    merge_partition,
    right_sized,
    split_bundle,
)

NOW = datetime(2026, 11, 24, tzinfo=UTC)
SHARDS, MERGERS = 2, 3


def run_stages(
    documents: list[dict[str, object]], config: MatchingConfig | None = None, *, answer_every: int = 1
) -> tuple[list[ShardStage], Merger, list[dict[str, object]]]:
    """Every event through every shard and the merger; the shards answer every ``answer_every``
    events (and after the last), as the service does when records wait in its queue."""
    config = config or MatchingConfig()
    stages = [ShardStage({}, shards=SHARDS, config=config, analyzer=default_analyzer()) for _ in range(SHARDS)]
    merger = Merger({}, config=config, shards=SHARDS, partitions=MERGERS)
    for partition in range(MERGERS):
        merger.load(partition, [])
    out: list[dict[str, object]] = []
    for shard, stage in enumerate(stages):
        stage.build(shard)
    log = shard_log(documents)
    for offset, (key, value) in enumerate(log):
        for shard, stage in enumerate(stages):
            stage.apply(shard, offset, key, value)
            if (offset + 1) % answer_every == 0 or offset == len(log) - 1:
                out += deliver(merger, stage.take_answers(shard))
    return stages, merger, out


def deliver(merger: Merger, answers: list[Answer]) -> list[dict[str, object]]:
    for partition, bundle in bundle_answers(answers, MERGERS):
        for raw in split_bundle(bundle):
            merger.receive(partition, raw)
    return announced(merger)


def announced(merger: Merger) -> list[dict[str, object]]:
    """The merger's events, each held to the public contract: its bytes are those :func:`encode` writes
    for the :class:`MatchEvent` they parse as (the merger builds them without the model), on the
    partition of its seeker."""
    out = []
    for announcement in merger.take_events(emitted_at=NOW):
        event = MatchEvent.model_validate_json(announcement.value)
        assert encode(event) == announcement.value
        assert (event.type, event.match_id, event.seeker.id, event.reason) == (
            announcement.type, announcement.match_id, announcement.seeker_id, announcement.reason
        )  # fmt: skip
        assert announcement.partition == merge_partition((event.seeker.entity, event.seeker.id), MERGERS)
        out.append(orjson.loads(announcement.value))
    return out


def test_shards_and_merger_end_with_the_oracles_open_matches() -> None:
    documents = Market(5).lifecycle(400, expiring=0.2)
    _, _, out = run_stages(documents)
    result = audit(out, oracle_matches([to_event(d) for d in documents]))
    assert result.equal and result.duplicates == 0


def test_a_direct_merger_announces_what_answers_through_the_wire_would() -> None:
    """With one shard the service hands the answers to its merger in the same worker
    (:meth:`Merger.receive_direct`): the same events, byte for byte, as through bundles and the table,
    ending on the oracle, and nothing stored."""
    documents = Market(7).lifecycle(400, expiring=0.2)
    config = MatchingConfig()
    runs = []
    for direct in (False, True):
        stage = ShardStage({}, shards=1, config=config, analyzer=default_analyzer())
        merger = Merger({}, config=config, shards=1, partitions=MERGERS)
        for partition in range(MERGERS):
            merger.load(partition, [])
        stage.build(0)
        out: list[dict[str, object]] = []
        for offset, (key, value) in enumerate(shard_log(documents)):
            stage.apply(0, offset, key, value)
            if direct:
                for answer in stage.take_answers(0):
                    merger.receive_direct(merge_partition(answer.seeker, MERGERS), answer)
                out += announced(merger)
            else:
                out += deliver(merger, stage.take_answers(0))
        runs.append((out, len(merger.store)))
    (through_the_wire, stored), (direct_out, stored_direct) = runs
    assert direct_out == through_the_wire
    assert audit(direct_out, oracle_matches([to_event(d) for d in documents])).equal
    assert stored > 0 and stored_direct == 0


def test_a_direct_shard_fed_by_the_inputs_and_the_shard_log_and_restarted_ends_on_the_oracle() -> None:
    """A direct worker applies its own inputs at once (no offset) and other workers' through the shard
    log. Those answers keep the last shard-log tag, so the merger takes every one; after a restart
    (the shard rebuilt from its table, the merger from what was announced, events read again from an
    earlier commit) the resync and the answers after it end on the oracle, with no repeat."""
    documents = Market(14).lifecycle(500, expiring=0.2)
    log = shard_log(documents)
    config = MatchingConfig()

    def direct_worker(store: dict[str, bytes], announced_before: list[dict[str, object]]) -> tuple[ShardStage, Merger]:
        stage = ShardStage(store, shards=1, config=config, analyzer=default_analyzer())
        merger = Merger({}, config=config, shards=1, partitions=MERGERS)
        for partition in range(MERGERS):
            merger.load(
                partition, [e for e in announced_before if merge_partition(_seeker_of(e), MERGERS) == partition]
            )
        for answer in stage.build(0):
            merger.receive_direct(merge_partition(answer.seeker, MERGERS), answer)
        return stage, merger

    highest_offset = -1

    def feed(stage: ShardStage, merger: Merger, indexes: range) -> list[dict[str, object]]:
        nonlocal highest_offset
        out: list[dict[str, object]] = []
        for i in indexes:
            offset = i // 3 if i % 3 == 0 else None  # a third comes through the shard log
            stage.apply(0, offset, *log[i])
            highest_offset = max(highest_offset, -1 if offset is None else offset)
            for answer in stage.take_answers(0):
                assert answer.tag == highest_offset
                merger.receive_direct(merge_partition(answer.seeker, MERGERS), answer)
            out += announced(merger)
        return out

    stage, merger = direct_worker({}, [])
    half = len(log) // 2
    out = feed(stage, merger, range(half))
    stage, merger = direct_worker(dict(stage.store), out)
    out += announced(merger)
    out += feed(stage, merger, range(half - 40, len(log)))
    result = audit(out, oracle_matches([to_event(d) for d in documents]))
    assert result.equal and result.duplicates == 0


def test_the_audit_tells_each_difference_from_the_oracle_and_counts_exact_repeats() -> None:
    """The audit every reliability scenario ends on must be able to fail: one open match missing, one
    extra, one with another score, and one event repeated are each reported, and folding the output a
    piece at a time (as a long run reads it) says the same as folding it at once."""
    documents = Market(5).lifecycle(200, expiring=0.2)
    _, _, out = run_stages(documents)
    oracle = oracle_matches([to_event(d) for d in documents])
    first, second, third = sorted(oracle)[:3]
    assert audit(out, oracle) == Audit(len(out), missing=0, extra=0, changed=0, duplicates=0)

    shorter = {m: c for m, c in oracle.items() if m != first}
    rescored = {**oracle, second: dataclasses.replace(oracle[second], score=oracle[second].score / 2)}
    longer = {**oracle, "never-open": dataclasses.replace(oracle[third], match_id="never-open")}
    assert (audit(out, shorter).extra, audit(out, rescored).changed, audit(out, longer).missing) == (1, 1, 1)
    half = len(out) // 2
    repeated = [*out[:half], out[half - 1], *out[half:]]
    assert audit(repeated, oracle) == Audit(len(out) + 1, missing=0, extra=0, changed=0, duplicates=1)

    pieces = OutputFold()
    for start in range(0, len(repeated), 7):
        pieces.add_all(repeated[start : start + 7])
    assert pieces.against(rescored) == audit(repeated, rescored)


def test_answering_once_for_many_events_ends_the_same_with_fewer_notifications() -> None:
    """In a backlog a shard answers for a batch of events: the seekers end with the oracle's matches,
    and the matches that came and went within a batch never reach the brokers."""
    documents = Market(11).lifecycle(400, expiring=0.2)
    oracle = oracle_matches([to_event(d) for d in documents])
    _, _, each = run_stages(documents)
    _, _, batched = run_stages(documents, answer_every=25)
    assert audit(each, oracle).equal and audit(batched, oracle).equal
    assert audit(batched, oracle).duplicates == 0
    assert len(batched) < len(each)


def test_answers_travel_in_bundles_per_merger_partition_below_the_record_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = Market(13).listings(300)
    stages, _, _ = run_stages(documents)
    answers = stages[0].build(0)  # a resync: an answer for every seeker
    cap = 16 * 1024
    monkeypatch.setattr(streams.sharding, "BUNDLE_BYTES", cap)
    bundles = bundle_answers(answers, MERGERS)
    assert MERGERS < len(bundles) < len(answers)
    assert all(len(bundle) <= cap or b"\n" not in bundle for _, bundle in bundles)
    unbundled = sorted(raw for _, bundle in bundles for raw in split_bundle(bundle))
    assert unbundled == sorted(a.to_bytes() for a in answers)
    assert all(partition == merge_partition(tuple(decode_answer(raw)["seeker"]), MERGERS)  # type: ignore[arg-type]
               for partition, bundle in bundles for raw in split_bundle(bundle))  # fmt: skip


def test_a_shard_rebuilt_from_its_table_answers_like_the_one_that_ran() -> None:
    documents = Market(6).lifecycle(300, expiring=0.2)
    stages, _, _ = run_stages(documents)
    for shard, stage in enumerate(stages):
        rebuilt = ShardStage(dict(stage.store), shards=SHARDS, config=MatchingConfig(), analyzer=default_analyzer())
        resync = {a.seeker: decode_answer(a.to_bytes())["members"] for a in rebuilt.build(shard)}
        live = stage._engines[shard].engine.views
        for seeker, members in resync.items():
            assert [wire for wire, _ in members] == [list(_wire(c)) for c in live.view(seeker)]


def _wire(candidate: object) -> list[object]:
    from streams.sharding import candidate_to_wire

    return candidate_to_wire(candidate)  # type: ignore[arg-type]


def test_a_resync_repairs_what_a_crash_lost_and_an_old_answer_changes_nothing() -> None:
    documents = Market(7).lifecycle(200)
    stages, merger, _ = run_stages(documents)
    oracle = oracle_matches([to_event(d) for d in documents])
    # A merger that lost everything it emitted (the output never reached the topic) gets it all back
    # from the shards' resync, and a stale answer (older tag) afterwards does not move anything.
    fresh = Merger(dict(merger.store), config=merger.config, shards=SHARDS, partitions=MERGERS)
    for partition in range(MERGERS):
        fresh.load(partition, [])
    repaired: list[dict[str, object]] = []
    for shard, stage in enumerate(stages):
        rebuilt = ShardStage(dict(stage.store), shards=SHARDS, config=MatchingConfig(), analyzer=default_analyzer())
        repaired += deliver(fresh, rebuilt.build(shard))
    assert audit(repaired, oracle).equal
    seeker = next(iter(oracle.values())).seeker
    stale = Answer(seeker, 0, -1, [], {"*": "withdrawn"}, ("e-old", NOW.isoformat()))
    assert deliver(fresh, [stale]) == []


def test_a_merger_that_crashed_before_announcing_announces_when_it_takes_the_partition_again() -> None:
    """Answers are stored as they come and announced later: a crash in between leaves them in the table
    only. The merger that takes the partition next compares every seeker again and emits what is
    missing, with no repeat."""
    documents = Market(12).lifecycle(300, expiring=0.2)
    oracle = oracle_matches([to_event(d) for d in documents])
    stages, merger, out = run_stages(documents[:200])
    for shard, stage in enumerate(stages):  # the rest is taken, stored, and never announced
        for offset, (key, value) in enumerate(shard_log(documents)[200:], start=200):
            stage.apply(shard, offset, key, value)
        for answer in stage.take_answers(shard):
            merger.receive(merge_partition(answer.seeker, MERGERS), answer.to_bytes())
    restarted = Merger(dict(merger.store), config=merger.config, shards=SHARDS, partitions=MERGERS)
    for partition in range(MERGERS):
        restarted.load(partition, [e for e in out if merge_partition(_seeker_of(e), MERGERS) == partition])
    resync = announced(restarted)
    assert resync and audit(out + resync, oracle).equal and audit(out + resync, oracle).duplicates == 0


def _seeker_of(event: dict[str, object]) -> tuple[str, str]:
    seeker = event["seeker"]
    assert isinstance(seeker, dict)
    return (seeker["entity"], seeker["id"])


def test_reading_old_events_again_after_a_restart_keeps_the_resync_tag() -> None:
    """A restarted worker re-reads from the committed offset, behind what its table holds: a second
    crash then must still resync with the newest tag, or the merger ignores the resync."""
    documents = Market(8).lifecycle(120)
    stages, _, _ = run_stages(documents)
    log = shard_log(documents)
    for shard, stage in enumerate(stages):
        restarted = ShardStage(dict(stage.store), shards=SHARDS, config=MatchingConfig(), analyzer=default_analyzer())
        first = restarted.build(shard)
        for offset in range(len(log) // 2, len(log) // 2 + 10):  # committed offset was far behind
            restarted.apply(shard, offset, *log[offset])
            assert restarted.take_answers(shard) == []
        again = ShardStage(dict(restarted.store), shards=SHARDS, config=MatchingConfig(), analyzer=default_analyzer())
        assert {a.tag for a in again.build(shard)} == {a.tag for a in first} == {len(log) - 1}


def test_the_merger_forgets_seekers_left_with_no_match() -> None:
    """The answers table holds the seekers with matches only: withdrawn and expired ones leave it."""
    documents = Market(9).lifecycle(400, withdrawals=0.3, expiring=0.3)
    _, merger, out = run_stages(documents)
    open_seekers = {f"{c.seeker_kind}:{c.seeker_id}" for c in oracle_matches([to_event(d) for d in documents]).values()}
    assert {key.split("|")[0] for key in merger.store} == open_seekers
    assert audit(out, oracle_matches([to_event(d) for d in documents])).equal


def test_answers_stored_by_earlier_versions_announce_the_same_events() -> None:
    """Answers come back from the table after an upgrade in the forms earlier versions stored: one JSON
    object, each member's explanation a JSON string or, older still, decoded. Announced from them, the
    events are the same bytes as from answers of this version."""
    stages, _, _ = run_stages(Market(5).lifecycle(150, expiring=0.2))
    answers = [answer for shard, stage in enumerate(stages) for answer in stage.build(shard) if answer.members]
    assert any(answer.seeker[0] == "financing" for answer in answers)

    def announced_from(stored: dict[str, bytes]) -> list[dict[str, object]]:
        merger = Merger(stored, config=MatchingConfig(), shards=SHARDS, partitions=MERGERS)
        for partition in range(MERGERS):
            merger.load(partition, [])
        return announced(merger)

    def earlier(answer: Answer, explanation: Callable[[bytes], object]) -> bytes:
        head = decode_answer(answer.to_bytes())
        members = [{"c": wire, "x": explanation(x)} for wire, x in head["members"]]
        return orjson.dumps(head | {"members": members})

    keys = [f"{a.seeker[0]}:{a.seeker[1]}|{a.shard}" for a in answers]
    as_sent = announced_from({key: a.to_bytes() for key, a in zip(keys, answers, strict=True)})
    assert as_sent
    for explanation in (bytes.decode, orjson.loads):
        stored = {key: earlier(a, explanation) for key, a in zip(keys, answers, strict=True)}
        assert b"\t" not in b"".join(stored.values())
        assert announced_from(stored) == as_sent


def test_the_book_table_keeps_open_entities_and_recent_tombstones_only() -> None:
    """Withdrawn and expired entities leave a small tombstone, deleted after the retention; a shard
    rebuilt from such a table still answers like the one that ran."""
    config = MatchingConfig(tombstone_retention_days=0.05)
    documents = Market(10).lifecycle(500, withdrawals=0.3, expiring=0.5)
    stages, _, out = run_stages(documents, config)
    assert audit(out, oracle_matches([to_event(d) for d in documents])).equal
    for shard, stage in enumerate(stages):
        book = stage._engines[shard].engine.shards[0].book
        stored = {k.split("|", 1)[1]: v for k, v in stage.store.items() if not k.endswith("|@")}
        tombstones = {k for k, v in stored.items() if v.startswith(b'{"closed":')}
        assert {k for k in stored if k not in tombstones} == {f"{kind}:{i}" for kind, i in book.open}
        assert len(tombstones) == book.tombstones() and max(len(stored[k]) for k in tombstones) < 120
        rebuilt = ShardStage(dict(stage.store), shards=SHARDS, config=config, analyzer=default_analyzer())
        resync = {a.seeker: [wire for wire, _ in decode_answer(a.to_bytes())["members"]] for a in rebuilt.build(shard)}
        live = stage._engines[shard].engine.views
        assert all(members == [list(_wire(c)) for c in live.view(seeker)] for seeker, members in resync.items())
        assert rebuilt._engines[shard].engine.shards[0].book.tombstones() == book.tombstones()
    assert len(stored) < len({(d.get("offer_id"), d.get("demand_id"), d.get("request_id")) for d in documents})


def test_encodings_kept_for_long_hold_only_their_length() -> None:
    """A shard keeps an encoded member per open match; orjson's own result would hold 4 KB each."""
    members = [{"c": ["transaction", "demand", f"d{i}", 1, "offer", f"o{i}", 1, None, None, 0.5], "x": "{}"}
               for i in range(2000)]  # fmt: skip
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [right_sized(orjson.dumps(member)) for member in members]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert all(orjson.loads(k) == m for k, m in zip(kept, members, strict=True))
    assert held < len(members) * 300


def test_a_rebuild_in_steps_pauses_often_and_ends_as_a_rebuild_at_once() -> None:
    """The service rebuilds a shard a step at a time, its event loop running in between: a pause at
    least every ENTITIES_PER_STEP entries loaded and every SEEKERS_PER_STEP seekers ranked or answered,
    the shard counted as built only after the last step, and the same resync as a rebuild at once."""
    documents = Market(19).lifecycle(600, expiring=0.2)
    stages, _, _ = run_stages(documents)
    table = stages[0].store
    at_once = ShardStage(dict(table), shards=SHARDS, config=MatchingConfig(), analyzer=default_analyzer())
    in_steps = ShardStage(dict(table), shards=SHARDS, config=MatchingConfig(), analyzer=default_analyzer())
    expected = [answer.to_bytes() for answer in at_once.build(0)]

    steps = in_steps.building(0)
    pauses = 0
    while True:
        try:
            next(steps)
        except StopIteration as built:
            resync = built.value
            break
        pauses += 1
        assert not in_steps.is_built(0)
    assert in_steps.is_built(0)
    assert [answer.to_bytes() for answer in resync] == expected
    stored = sum(1 for key in table if key.startswith("0|")) - 1  # less the offset record
    book = in_steps.book_sizes(0)
    ranked = book["buyer_demands"] + book["financing_requests"]
    least = stored // ENTITIES_PER_STEP + (ranked + len(resync)) // SEEKERS_PER_STEP
    assert pauses >= least > 10


def test_a_shard_dropped_or_rebuilt_anew_during_its_rebuild_is_not_kept() -> None:
    """A partition revoked in the middle of its rebuild must not come back as a stale engine when the
    rebuild ends; nor may an older rebuild, ending late, replace a newer one that has applied events."""
    documents = Market(19).lifecycle(300, expiring=0.2)
    stages, _, _ = run_stages(documents)
    stage = ShardStage(dict(stages[0].store), shards=SHARDS, config=MatchingConfig(), analyzer=default_analyzer())

    dropped = stage.building(0)
    next(dropped)
    stage.drop(0)
    for _ in dropped:
        pass
    assert not stage.is_built(0)

    older, newer = stage.building(0), stage.building(0)
    next(older)
    for _ in newer:
        pass
    before = stage.book_sizes(0)["buyer_demands"]
    key, value = shard_log([Market(23).buyer(demand_id="demand-after-the-rebuild")])[0]
    stage.apply(0, len(documents), key, value)
    for _ in older:
        pass
    assert stage.is_built(0)
    assert stage.book_sizes(0)["buyer_demands"] == before + 1
