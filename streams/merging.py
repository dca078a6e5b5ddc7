"""The merge stage: each seeker's open matches, combined from the shards' answers.

For every seeker the merger keeps the latest answer of each shard (in a changelog-backed table, one
entry per seeker) and announces the difference between the merged top K and what it has *emitted* —
the open matches of that seeker in ``patent.matches`` itself. What was emitted is read back from the
output topic when the merger takes a partition, so after a crash the merger emits exactly what is
missing: no lost match, and no repeat other than the events in flight at the crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

import orjson

from matcher.candidates import Candidate, SeekerKey
from schemas import EntityRef, MatchEvent, MatchFacts
from streams.sharding import candidate_from_wire, seeker_key

__all__ = ["Merger", "candidate_of_event"]


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


class Merger:
    """``store`` is the changelog-backed table of answers (a dict in unit tests)."""

    def __init__(self, store: MutableMapping[str, bytes], *, top_k: int) -> None:
        self.store = store
        self.top_k = top_k
        self._emitted: dict[int, dict[SeekerKey, dict[str, Candidate]]] = {}

    def is_loaded(self, partition: int) -> bool:
        return partition in self._emitted

    def load(self, partition: int, emitted_events: Iterable[Mapping[str, Any]]) -> None:
        """Take a partition: fold what ``patent.matches`` holds for it into the emitted state."""
        emitted: dict[SeekerKey, dict[str, Candidate]] = {}
        for event in emitted_events:
            seeker: SeekerKey = (event["seeker"]["entity"], event["seeker"]["id"])
            held = emitted.setdefault(seeker, {})
            if event["type"] == "match":
                held[event["match_id"]] = candidate_of_event(event)
            else:
                held.pop(event["match_id"], None)
        self._emitted[partition] = emitted

    def drop(self, partition: int) -> None:
        self._emitted.pop(partition, None)

    def receive(self, partition: int, answer: Mapping[str, Any], *, emitted_at: datetime) -> list[MatchEvent]:
        """Take one shard answer; return the match and revoke events that bring the seeker's emitted
        matches to its merged top K."""
        seeker: SeekerKey = (answer["seeker"][0], answer["seeker"][1])
        key = seeker_key(seeker)
        raw = self.store.get(key)
        held: dict[str, Any] = orjson.loads(raw) if raw is not None else {}
        shard = str(answer["shard"])
        if shard not in held or answer["tag"] >= held[shard]["tag"]:
            entry = {"tag": answer["tag"], "members": answer["members"]}
            held = {**held, shard: entry}
            if any(e["members"] for e in held.values()):
                self.store[key] = orjson.dumps(held)
            elif raw is not None:
                # Nothing from any shard: forget the seeker, so that the table holds open matches only
                # and does not grow with every seeker ever seen. An older answer arriving later (a shard
                # replaying what it did before a crash) can then be taken again; the newer answers that
                # follow it in the same shard's order take it back.
                del self.store[key]
        merged = self._merged(held)
        return self._diff(partition, seeker, merged, answer, emitted_at)

    def _merged(self, held: Mapping[str, Any]) -> list[tuple[Candidate, dict[str, Any]]]:
        members = [(candidate_from_wire(m["c"]), m["x"]) for entry in held.values() for m in entry["members"]]
        members.sort(key=lambda pair: pair[0].order)
        return members[: self.top_k]

    def _diff(
        self,
        partition: int,
        seeker: SeekerKey,
        merged: list[tuple[Candidate, dict[str, Any]]],
        answer: Mapping[str, Any],
        emitted_at: datetime,
    ) -> list[MatchEvent]:
        emitted = self._emitted[partition].setdefault(seeker, {})
        trigger_id, trigger_at = answer["trigger"]
        occurred_at = datetime.fromisoformat(trigger_at)
        now_ids = {c.match_id for c, _ in merged}
        reasons: Mapping[str, str] = answer["left"]
        out: list[MatchEvent] = []
        for match_id in sorted(set(emitted) - now_ids):
            gone = emitted.pop(match_id)
            reason = reasons.get(match_id) or reasons.get("*") or "superseded"
            out.append(_event("revoke", gone, None, None, reason, trigger_id, occurred_at, emitted_at))
        for rank, (candidate, explanation) in enumerate(merged, start=1):
            before = emitted.get(candidate.match_id)
            if before is None or not before.same_state(candidate):
                emitted[candidate.match_id] = candidate
                out.append(_event("match", candidate, rank, explanation, None, trigger_id, occurred_at, emitted_at))
        if not emitted:
            del self._emitted[partition][seeker]
        return out


def _event(
    type_: str,
    c: Candidate,
    rank: int | None,
    explanation: Mapping[str, Any] | None,
    reason: str | None,
    trigger_event_id: str,
    occurred_at: datetime,
    emitted_at: datetime,
) -> MatchEvent:
    financier = None
    if c.financier_id is not None and c.financier_version is not None:
        financier = EntityRef(entity="demand", id=c.financier_id, version=c.financier_version)
    x = explanation or {}
    return MatchEvent.model_construct(
        type=type_,
        match_id=c.match_id,
        kind=c.kind,
        seeker=EntityRef(entity=c.seeker_kind, id=c.seeker_id, version=c.seeker_version),
        counterpart=EntityRef(entity=c.counterpart_kind, id=c.counterpart_id, version=c.counterpart_version),
        financier=financier,
        score=c.score if type_ == "match" else None,
        rank=rank,
        components=dict(x.get("components", {})),
        reasons=list(x.get("reasons", [])),
        matched_ipc=list(x.get("matched_ipc", [])),
        matched_terms=list(x.get("matched_terms", [])),
        facts=MatchFacts.model_validate(x["facts"]) if "facts" in x else None,
        reason=reason,
        trigger_event_id=trigger_event_id,
        occurred_at=occurred_at,
        emitted_at=emitted_at,
    )
