"""The merge stage: each seeker's open matches, combined from the shards' answers.

For every seeker the merger keeps the latest answer of each shard (in a changelog-backed table, one
entry per seeker and shard) and announces the difference between the merged top K and what it has
*emitted* — the open matches of that seeker in ``patent.matches`` itself.

Taking an answer (:meth:`Merger.receive`) only stores it and marks its seeker; the service asks for the
match and revoke events (:meth:`Merger.take_events`) when no answer is left waiting, or every
``batch_interval_s`` in a backlog. A seeker whose top K changed many times meanwhile is announced once,
with its net change: brokers are not sent matches that came and went within a fraction of a second.

What was emitted is read back from the output topic when the merger takes a partition, and every
seeker of the partition is then compared again (a *resync*), so after a crash the merger emits exactly
what is missing — including the changes of answers it had stored but not yet announced — and repeats
nothing but the events in flight at the crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from matcher.candidates import Candidate, SeekerKey
from matcher.config import MatchingConfig
from matcher.explain import with_inferred_field
from matcher.inference import open_ranking
from schemas import MatchEvent
from streams.sharding import (
    COUNTERPART_ID,
    COUNTERPART_VERSION,
    FINANCIER_ID,
    FINANCIER_VERSION,
    INFERENCE_WEIGHT,
    MATCH_ID,
    SCORE,
    SEEKER_VERSION,
    Answer,
    candidate_from_wire,
    candidate_to_wire,
    decode_answer,
    merge_partition,
    seeker_key,
)

__all__ = ["Announcement", "EmittedFold", "Merger", "candidate_of_event"]

Trigger = tuple[str, str]
"""The event that produced a change: (event id, occurred_at in ISO 8601)."""
Explained = bytes | str | Mapping[str, Any]
"""A member's explanation as an answer holds it: JSON, or as answers stored by earlier versions did."""


@dataclass(frozen=True, slots=True)
class _Inferred:
    """A member's explanation as the shard gave it, and the member ranked with its inferred field: the
    explanation is completed only if the member is announced (most of a top K is unchanged)."""

    explained: Explained
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class Announcement:
    """One match or revoke event for ``patent.matches``: its JSON (a :class:`schemas.MatchEvent` as
    :func:`schemas.encode` writes it), its partition, and what the service counts and keys it by."""

    partition: int
    type: str
    kind: str
    reason: str | None
    seeker_id: str
    match_id: str
    trigger_event_id: str
    occurred_at: datetime
    emitted_at: datetime
    value: bytes


def candidate_of_event(event: Mapping[str, Any]) -> Candidate:
    """The candidate an emitted match event stands for (match id, parties, versions, score)."""
    financier = event.get("financier") or {}
    return Candidate(
        event["kind"],
        event["seeker"]["entity"],
        event["seeker"]["id"],
        event["seeker"]["version"],
        event["counterpart"]["entity"],
        event["counterpart"]["id"],
        event["counterpart"]["version"],
        financier.get("id"),
        financier.get("version"),
        event.get("score") or 0.0,
        match_id=event["match_id"],
    )


class EmittedFold:
    """What ``patent.matches`` holds for some seekers, folded one event at a time: each seeker's open
    matches, and the last event announced for it. A worker folds the topic as it reads it, a fetch at a
    time (after a backlog of 100k listings in ``bench.e2e``, 2.4M events), not after holding all of it."""

    def __init__(self) -> None:
        self.held: dict[SeekerKey, dict[str, Candidate]] = {}
        self.triggers: dict[SeekerKey, Trigger] = {}

    def add(self, event: Mapping[str, Any]) -> None:
        seeker: SeekerKey = (event["seeker"]["entity"], event["seeker"]["id"])
        held = self.held.setdefault(seeker, {})
        if event["type"] == "match":
            held[event["match_id"]] = candidate_of_event(event)
        else:
            held.pop(event["match_id"], None)
        self.triggers[seeker] = (event["trigger_event_id"], event["occurred_at"])


class Merger:
    """``store`` is the changelog-backed table of answers (a dict in unit tests): one entry per seeker
    and shard, ``"<kind>:<id>|<shard>"``, holding that shard's latest answer as it arrived (answers are
    several KB and arrive several per input event: they are not decoded and encoded again)."""

    def __init__(
        self, store: MutableMapping[str, bytes], *, config: MatchingConfig, shards: int, partitions: int
    ) -> None:
        self.store = store
        self.config = config
        self.top_k = config.top_k
        self.shards = shards
        self.partitions = partitions
        self._emitted: dict[int, dict[SeekerKey, dict[str, Candidate]]] = {}
        self._pending: dict[int, dict[SeekerKey, tuple[dict[str, str], Trigger | None]]] = {}
        """Per partition, the seekers to compare again: why members left (match id, or ``*`` for all
        of a shard's, → revoke reason) and the last event that changed them, if known."""
        self._taken: dict[tuple[SeekerKey, int], dict[str, Any]] = {}
        """The answers stored since the last :meth:`take_events`, decoded: most of what it compares."""
        self._tags: dict[int, dict[SeekerKey, dict[int, tuple[int, bool]]]] = {}
        """Per partition and seeker, the tag of each shard's stored answer and whether it has members:
        what taking an answer needs, without decoding the stored ones."""

    def is_loaded(self, partition: int) -> bool:
        return partition in self._emitted

    def load(self, partition: int, emitted_events: Iterable[Mapping[str, Any]]) -> None:
        """Take a partition: :meth:`load_fold` of what ``patent.matches`` holds for it."""
        fold = EmittedFold()
        for event in emitted_events:
            fold.add(event)
        self.load_fold(partition, fold)

    def load_fold(self, partition: int, fold: EmittedFold) -> None:
        """Take a partition: what ``patent.matches`` holds for it, folded, becomes the emitted state,
        and every seeker it holds, there or in the table, is marked for a resync."""
        pending: dict[SeekerKey, tuple[dict[str, str], Trigger | None]] = {
            seeker: ({}, trigger) for seeker, trigger in fold.triggers.items()
        }
        for key in list(self.store):
            stored = _seeker_of_key(key)
            if merge_partition(stored, self.partitions) == partition:
                pending.setdefault(stored, ({}, None))
        self._emitted[partition] = {seeker: held for seeker, held in fold.held.items() if held}
        self._pending[partition] = pending
        self._tags[partition] = {}

    def drop(self, partition: int) -> None:
        """The partition went to another worker: forget it (the table entries then change elsewhere)."""
        self._emitted.pop(partition, None)
        self._pending.pop(partition, None)
        self._tags.pop(partition, None)
        self._taken = {
            key: answer for key, answer in self._taken.items() if merge_partition(key[0], self.partitions) != partition
        }

    def receive(self, partition: int, raw: bytes) -> None:
        """Take one shard answer (its bytes, as the shard sent them): store it unless the table holds a
        newer one from that shard, and mark its seeker for :meth:`take_events`."""
        self._take(partition, decode_answer(raw), raw)

    def receive_direct(self, partition: int, answer: Answer) -> None:
        """Take an answer of the one shard of a direct service, in this worker: neither encoded nor
        stored. Its answers come in order, and every seeker compared comes with its answer (after a
        restart, in the shard's resync), so the table would only be written."""
        assert self.shards == 1, "a merger of several shards compares answers it took earlier"
        fields = {"seeker": answer.seeker, "shard": answer.shard, "tag": answer.tag, "members": answer.members,
                  "left": answer.left, "trigger": answer.trigger}  # fmt: skip
        self._take(partition, fields, None)

    def _take(self, partition: int, answer: dict[str, Any], raw: bytes | None) -> None:
        """Take a decoded answer; store it as ``raw`` unless that is None."""
        seeker: SeekerKey = (answer["seeker"][0], answer["seeker"][1])
        shard = answer["shard"]
        tags = self._tags[partition]
        if seeker not in tags:
            tags[seeker] = {stored: (a["tag"], bool(a["members"])) for stored, a in self._held(seeker).items()}
        known = tags[seeker]
        if shard in known and answer["tag"] < known[shard][0]:
            return
        known[shard] = (answer["tag"], bool(answer["members"]))
        keys = self._keys(seeker)
        if any(has_members for _, has_members in known.values()):
            if raw is not None:
                self.store[keys[shard]] = raw
            self._taken[(seeker, shard)] = answer
        else:
            # Nothing from any shard: forget the seeker, so that the table holds open matches only and
            # does not grow with every seeker ever seen. An older answer arriving later (a shard
            # replaying what it did before a crash) can then be taken again; the newer answers that
            # follow it in the same shard's order take it back.
            for stored, key in keys.items():
                self.store.pop(key, None)
                self._taken.pop((seeker, stored), None)
            del tags[seeker]
        pending = self._pending[partition]
        reasons = pending[seeker][0] if seeker in pending else {}
        reasons.update(answer["left"])
        pending[seeker] = (reasons, (answer["trigger"][0], answer["trigger"][1]))

    def take_events(self, *, emitted_at: datetime) -> list[Announcement]:
        """The match and revoke events that bring every marked seeker's emitted matches to its merged
        top K."""
        out: list[Announcement] = []
        for partition, pending in sorted(self._pending.items()):
            self._pending[partition] = {}
            for seeker, (reasons, trigger) in sorted(pending.items()):
                held = self._held(seeker)
                trigger = trigger or _latest_trigger(held.values())
                if trigger is None:
                    continue  # nothing emitted, nothing stored: nothing to announce
                out += self._diff(partition, seeker, self._merged(held.values()), reasons, trigger, emitted_at)
        self._taken.clear()
        return out

    def _keys(self, seeker: SeekerKey) -> dict[int, str]:
        return {shard: f"{seeker_key(seeker)}|{shard}" for shard in range(self.shards)}

    def _held(self, seeker: SeekerKey) -> dict[int, dict[str, Any]]:
        """The latest stored answer of each shard for ``seeker``."""
        held = {}
        for shard, key in self._keys(seeker).items():
            answer = self._taken.get((seeker, shard))
            if answer is None and (raw := self.store.get(key)) is not None:
                answer = decode_answer(raw)
            if answer is not None:
                held[shard] = answer
        return held

    def _merged(self, held: Iterable[Mapping[str, Any]]) -> list[tuple[list[Any], Explained | _Inferred]]:
        """The top K of the shards' members, as they came on the wire (``candidate_to_wire``): most
        stay as they were, and are compared without building a :class:`Candidate` for each. A seeker
        whose field is inferred gets the best K of its merged pool, ranked with it. The one shard of a
        one-shard service holds the whole book: its answers are the open matches, ranked and explained."""
        if self.shards == 1:
            return [member for answer in held for member in answer["members"]]
        members = [(_with_match_id(wire), x) for answer in held for wire, x in answer["members"]]
        members.sort(key=lambda pair: (-pair[0][SCORE], pair[0][COUNTERPART_ID], pair[0][FINANCIER_ID] or ""))
        if not members or len(members[0][0]) <= INFERENCE_WEIGHT:
            return members[: self.top_k]
        pool = members[: self.config.ranked_depth(True)]
        explained = {wire[MATCH_ID]: x for wire, x in pool}
        return [
            (candidate_to_wire(c), _Inferred(explained[c.match_id], c))
            for c in open_ranking([candidate_from_wire(wire) for wire, _ in pool], self.config)
        ]

    def _diff(
        self,
        partition: int,
        seeker: SeekerKey,
        merged: list[tuple[list[Any], Explained | _Inferred]],
        reasons: Mapping[str, str],
        trigger: Trigger,
        emitted_at: datetime,
    ) -> list[Announcement]:
        emitted = self._emitted[partition].setdefault(seeker, {})
        trigger_id, occurred_at = trigger[0], datetime.fromisoformat(trigger[1])
        times = {"trigger_event_id": trigger_id, "occurred_at": occurred_at, "emitted_at": emitted_at}
        out: list[Announcement] = []

        def announce(type_: str, c: Candidate, rank: int | None, explanation: bytes, reason: str | None) -> None:
            value = _event_json(type_, c, rank, explanation, reason, times)
            out.append(Announcement(partition, type_, c.kind, reason, c.seeker_id, c.match_id, trigger_id,
                                    occurred_at, emitted_at, value))  # fmt: skip

        now_ids = {wire[MATCH_ID] for wire, _ in merged}
        for match_id in sorted(set(emitted) - now_ids):
            gone = emitted.pop(match_id)
            reason = reasons.get(match_id) or reasons.get("*") or "superseded"
            announce("revoke", gone, None, NO_EXPLANATION, reason)
        for rank, (wire, explanation) in enumerate(merged, start=1):
            before = emitted.get(wire[MATCH_ID])
            if before is None or not _same_state(before, wire):
                candidate = candidate_from_wire(wire)
                emitted[candidate.match_id] = candidate
                announce("match", candidate, rank, _explanation_json(explanation), None)
        if not emitted:
            del self._emitted[partition][seeker]
        return out


def _with_match_id(wire: list[Any]) -> list[Any]:
    """Answers stored before the wire carried the match id get it computed."""
    return wire if len(wire) > MATCH_ID else [*wire, candidate_from_wire(wire).match_id]


def _same_state(emitted: Candidate, wire: list[Any]) -> bool:
    """:meth:`Candidate.same_state`, against a member on the wire."""
    return (
        emitted.seeker_version == wire[SEEKER_VERSION]
        and emitted.counterpart_version == wire[COUNTERPART_VERSION]
        and emitted.financier_version == wire[FINANCIER_VERSION]
        and emitted.score == wire[SCORE]
    )


def _seeker_of_key(key: str) -> SeekerKey:
    kind, entity_id = key.rsplit("|", 1)[0].split(":", 1)
    return (kind, entity_id)  # type: ignore[return-value]


def _latest_trigger(held: Iterable[Mapping[str, Any]]) -> Trigger | None:
    answers = sorted(held, key=lambda answer: answer["tag"])
    return (answers[-1]["trigger"][0], answers[-1]["trigger"][1]) if answers else None


EXPLANATION_FIELDS: Mapping[str, Any] = {
    name: MatchEvent.model_fields[name].get_default(call_default_factory=True)
    for name in ("components", "reasons", "matched_ipc", "matched_terms")
}
"""The fields of an explanation that every event carries, and their values when there is none (the
model's defaults)."""
NO_EXPLANATION = orjson.dumps(EXPLANATION_FIELDS)


def _with_inferred_field(explanation: Explained, candidate: Candidate) -> Mapping[str, Any]:
    """A shard's explanation of a member, with the field part the merger inferred for it."""
    fields = orjson.loads(_explanation_json(explanation))
    assert candidate.inferred_field is not None
    components, reasons, matched = with_inferred_field(
        fields["components"], fields["reasons"], candidate.inferred_field, candidate.field_codes.codes
    )
    return fields | {"components": components, "reasons": reasons, "matched_ipc": matched}


def _explanation_json(explanation: Explained | _Inferred) -> bytes:
    """A member's explanation as JSON: as the shard encoded it, or from the forms of answers stored by
    earlier versions (:func:`streams.sharding.decode_answer`), completed with an inferred field."""
    if isinstance(explanation, _Inferred):
        explanation = _with_inferred_field(explanation.explained, explanation.candidate)
    if isinstance(explanation, bytes):
        return explanation
    if isinstance(explanation, str):
        return explanation.encode()
    fields = {field: explanation.get(field, empty) for field, empty in EXPLANATION_FIELDS.items()}
    return orjson.dumps(fields | ({"facts": explanation["facts"]} if "facts" in explanation else {}))


def _event_json(
    type_: str,
    c: Candidate,
    rank: int | None,
    explanation: bytes,
    reason: str | None,
    times: Mapping[str, Any],
) -> bytes:
    """The event's JSON, the bytes :func:`schemas.encode` writes for the :class:`schemas.MatchEvent`
    (tests hold them equal), built without the model: a worker emits thousands a second, and building
    and dumping the model took more than half of the time to announce one. The explanation comes
    from the shard already encoded, its fields in the model's order, and goes between the fields that
    come before it in the model and those that come after."""
    head: dict[str, Any] = {
        "type": type_,
        "match_id": c.match_id,
        "kind": c.kind,
        "seeker": {"entity": c.seeker_kind, "id": c.seeker_id, "version": c.seeker_version},
        "counterpart": {"entity": c.counterpart_kind, "id": c.counterpart_id, "version": c.counterpart_version},
    }
    if c.financier_id is not None and c.financier_version is not None:
        head["financier"] = {"entity": "demand", "id": c.financier_id, "version": c.financier_version}
    if type_ == "match":
        head |= {"score": c.score, "rank": rank}
    tail = ({"reason": reason} if reason is not None else {}) | dict(times)
    return b"%b,%b,%b" % (orjson.dumps(head)[:-1], explanation[1:-1], orjson.dumps(tail, option=orjson.OPT_UTC_Z)[1:])
