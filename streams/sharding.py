"""The shard stage: one engine per shard-log partition, its book kept in a changelog-backed table.

Each partition of the shard log is one shard of the book (DESIGN.md, "Dataflow and scale-out"). The
worker that owns the partition runs :class:`matcher.Engine` as that shard alone. Applying an event
marks the seekers whose *local* top K changed; :meth:`ShardStage.take_answers` then gives, for each
marked seeker, an :class:`Answer` for the merger: the whole local top K, tagged with the shard-log
offset the shard has applied. The service takes the answers every ``batch_interval_s``
(:mod:`streams.batching`), so that in a backlog a seeker touched by many events is answered once (the
merger would only keep the last of those answers anyway).

The table holds, per shard, the latest accepted event of each open entity, a small tombstone for each
closed one (its version, why and when it closed: what the book needs to refuse an older version), and
a small ``@`` record (the offset, watermark and event last applied). A tombstone is deleted when the
engine forgets it (``tombstone_retention_days``), so the table does not grow with the history.

After a restart or a rebalance the engine is rebuilt from it, a few dozen entries at a time so that
the worker's event loop keeps turning (:meth:`ShardStage.building`), and every seeker's answer is sent
again (a *resync*): the table may be ahead of what reached the merger before a crash, and the merger
ignores answers older than the ones it holds, so a resync repairs what was lost and changes nothing
else.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Generator, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from matcher import Engine, MatchingConfig
from matcher.book import Entity
from matcher.candidates import Candidate, SeekerKey
from matcher.engine import Notice, Result, entity_from_event
from matcher.entities import Demand, Offer
from matcher.explain import Explanation
from matcher.ipc import field_codes
from matcher.text import TextAnalyzer
from schemas import EVENT_TYPES, BuyerDemand, InputEvent, PatentOffer, Rejection, decode

__all__ = [
    "Answer",
    "ShardStage",
    "ShardStep",
    "bundle_answers",
    "decode_answer",
    "merge_partition",
    "seeker_key",
    "shard_of_key",
    "split_bundle",
    "trigger_kind",
]

META = "@"
ENTITY_CACHE_SIZE = 512
ENTITIES_PER_STEP = 64
"""Table entries a rebuild loads between two pauses (:meth:`ShardStage.building`): ~20 ms of work."""
SEEKERS_PER_STEP = 32
"""Seekers a rebuild ranks, or answers (ten explained members each), between two pauses."""


def right_sized(encoded: bytes) -> bytes:
    """A copy of an ``orjson.dumps`` result that holds only its length, for bytes kept for long.

    orjson ≥ 3.12 returns bytes that keep the whole buffer it wrote into, at least 4 KB, however short
    the JSON: 100k results of 520 bytes took 393 MB of RSS here, their copies 55 MB. Each shard keeps
    one encoded member per open match (about ten per seeker), so at a 100k book the worker held
    gigabytes of empty buffer (home-assistant/core#181513 measured the same)."""
    return memoryview(encoded).tobytes()


def seeker_key(seeker: SeekerKey) -> str:
    return f"{seeker[0]}:{seeker[1]}"


def merge_partition(seeker: SeekerKey, partitions: int) -> int:
    """The merger partition (and ``patent.matches`` partition) that owns a seeker."""
    return zlib.crc32(seeker_key(seeker).encode()) % partitions


Member = tuple[list[object], bytes]
"""A member of an answer: the candidate as :func:`candidate_to_wire` lists it, and its explanation's JSON."""
EXPLANATIONS_FOLLOW = b"\t"
"""Ends an answer's JSON head: JSON as orjson writes it holds no raw tab, nor a raw newline (the bundles'
separator)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A shard's current local top K for one seeker, for the merger."""

    seeker: SeekerKey
    shard: int
    tag: int
    members: list[Member]
    left: dict[str, str]
    """Why members left since the shard's previous answer (match id → revoke reason)."""
    trigger: tuple[str, str]
    """The event that produced it: (event id, occurred_at)."""

    def to_bytes(self) -> bytes:
        """A JSON head, a tab, then the members' explanations one after the other (their lengths are in
        the head): the merger reads dozens of answers per event and announces a few of their members,
        so it decodes the head alone and copies out the explanations it sends. Decoding them, even as
        JSON strings, was most of the time it took to read an answer (:func:`decode_answer`)."""
        head = orjson.dumps(
            {
                "seeker": list(self.seeker),
                "shard": self.shard,
                "tag": self.tag,
                "members": [wire for wire, _ in self.members],
                "explained": [len(explanation) for _, explanation in self.members],
                "left": self.left,
                "trigger": list(self.trigger),
            }
        )
        return b"".join([head, EXPLANATIONS_FOLLOW, *(explanation for _, explanation in self.members)])


def decode_answer(raw: bytes) -> dict[str, Any]:
    """An answer as the merger reads it: the head's fields, ``members`` as (wire, explanation) pairs.

    Answers stored before :meth:`Answer.to_bytes` wrote explanations after the head are one JSON object,
    each member ``{"c": wire, "x": explanation}`` with the explanation a JSON string or, older still,
    decoded; they are read too, their explanations as they are."""
    head, tab, explanations = raw.partition(EXPLANATIONS_FOLLOW)
    answer: dict[str, Any] = orjson.loads(head)
    if not tab:
        answer["members"] = [(member["c"], member["x"]) for member in answer["members"]]
        return answer
    members, start = [], 0
    for wire, length in zip(answer["members"], answer.pop("explained"), strict=True):
        members.append((wire, explanations[start : start + length]))
        start += length
    answer["members"] = members
    return answer


BUNDLE_BYTES = 512 * 1024
"""Bundles stay well below the broker's default 1 MB record limit."""


def bundle_answers(answers: Iterable[Answer], partitions: int) -> list[tuple[int, bytes]]:
    """The answers as records for the merger: per merger partition, the answers' JSON one per line, in
    records of at most :data:`BUNDLE_BYTES` (or one answer, if larger).

    faust spends about 170 µs on each record it consumes (FAUST.md), and an event changes the answers
    of ten seekers and more; one record per partition and batch keeps that cost off the merger."""
    lines: dict[int, list[bytes]] = {}
    for answer in answers:
        lines.setdefault(merge_partition(answer.seeker, partitions), []).append(answer.to_bytes())
    records: list[tuple[int, bytes]] = []
    for partition, encoded in sorted(lines.items()):
        bundle: list[bytes] = []
        size = 0
        for line in encoded:
            if bundle and size + len(line) > BUNDLE_BYTES:
                records.append((partition, b"\n".join(bundle)))
                bundle, size = [], 0
            bundle.append(line)
            size += len(line) + 1
        records.append((partition, b"\n".join(bundle)))
    return records


def split_bundle(record: bytes) -> list[bytes]:
    """The answers of a record made by :func:`bundle_answers` (JSON never holds a raw newline)."""
    return record.split(b"\n")


@dataclass(frozen=True, slots=True)
class ShardStep:
    """What applying one shard-log record did, for the metrics."""

    outcome: str
    trigger: str
    """offer | buyer_demand | financier | financing_request"""
    candidates: int
    engine_seconds: float


def trigger_kind(event: InputEvent) -> str:
    if isinstance(event, PatentOffer):
        return "offer"
    if isinstance(event, BuyerDemand):
        return "financier" if event.intent in ("lend", "invest") else "buyer_demand"
    return "financing_request"


# Positions in candidate_to_wire's list, which the merger reads without building a Candidate: the
# eleven fields every member has, then the two of a seeker whose field is inferred.
SEEKER_VERSION, COUNTERPART_ID, COUNTERPART_VERSION, FINANCIER_ID, FINANCIER_VERSION, SCORE, MATCH_ID = (
    3,
    5,
    6,
    7,
    8,
    9,
    10,
)
FIELD_CODES, INFERENCE_WEIGHT = 11, 12


def candidate_to_wire(candidate: Candidate) -> list[object]:
    """The candidate as a JSON list, its match id included (the merger reads thousands a second and
    need not hash them again)."""
    c = candidate
    wire = [c.kind, c.seeker_kind, c.seeker_id, c.seeker_version, c.counterpart_kind, c.counterpart_id,
            c.counterpart_version, c.financier_id, c.financier_version, c.score, c.match_id]  # fmt: skip
    if c.inference_weight:
        wire += [list(c.field_codes.codes), c.inference_weight]
    return wire


def candidate_from_wire(fields: list[Any]) -> Candidate:
    """A candidate off the wire: the eleven fields every member has, and the two of a seeker whose field
    is inferred (``field_codes``, ``inference_weight``)."""
    if len(fields) > FIELD_CODES:
        return Candidate(
            *fields[:FIELD_CODES],
            field_codes=field_codes(tuple(fields[FIELD_CODES])),
            inference_weight=fields[INFERENCE_WEIGHT],
        )
    return Candidate(*fields)


def _explanation_to_wire(explanation: Explanation) -> dict[str, object]:
    return {
        "components": explanation.components,
        "reasons": list(explanation.reasons),
        "matched_ipc": list(explanation.matched_ipc),
        "matched_terms": list(explanation.matched_terms),
        "facts": explanation.facts.to_json(),
    }


class _PartitionEngine:
    """The engine of one shard, and the explanations of its current members."""

    def __init__(self, engine: Engine, shard: int, applied_through: int = -1) -> None:
        self.engine = engine
        self.shard = shard
        self.applied_through = applied_through
        """The highest shard-log offset whose effects the book holds. After a restart the worker reads
        again from the committed offset, which may be lower: those events change nothing, and this
        must not move back with them, or a later resync would carry a tag older than answers the
        merger already holds, and be ignored."""
        self._explained: dict[str, tuple[Candidate, Member]] = {}
        """Each current member as it goes on the wire, explained and encoded once (a member stays in a
        seeker's answers for many events, and explaining it is the dearest part of an answer)."""
        self._prune_at = 1000
        self.unanswered: dict[SeekerKey, tuple[dict[str, str], tuple[str, str]]] = {}
        """Seekers changed since the last answers: why members left (match id → revoke reason, the
        latest reason wins), and the last event that changed them."""

    def mark(self, notices: list[Notice], trigger: tuple[str, str]) -> None:
        """Note the seekers the notices changed, for :meth:`take_answers`."""
        for notice in notices:
            seeker = notice.candidate.seeker
            reasons = self.unanswered.get(seeker, ({}, trigger))[0]
            if notice.type == "revoke" and notice.reason is not None:
                reasons[notice.candidate.match_id] = notice.reason
            self.unanswered[seeker] = (reasons, trigger)

    def take_answers(self) -> list[Answer]:
        unanswered, self.unanswered = self.unanswered, {}
        return [
            self.answer(seeker, self.applied_through, reasons, trigger)
            for seeker, (reasons, trigger) in sorted(unanswered.items())
        ]

    def answer(self, seeker: SeekerKey, tag: int, left: dict[str, str], trigger: tuple[str, str]) -> Answer:
        members = [self._member(c) for c in self.engine.views.view(seeker)]
        return Answer(seeker, self.shard, tag, members, left, trigger)

    def remember(self, notices: list[Notice]) -> None:
        for notice in notices:
            c = notice.candidate
            if notice.type == "revoke":
                self._explained.pop(c.match_id, None)
        if len(self._explained) > self._prune_at:
            # Members can leave a view without a revoke of ours (their seeker closed): keep what is
            # open, and look again once the cache has doubled (amortised: a constant cost per notice).
            live = self.engine.views.open_matches()
            self._explained = {m: known for m, known in self._explained.items() if m in live}
            self._prune_at = 2 * len(self._explained) + 1000

    def _member(self, candidate: Candidate) -> Member:
        known = self._explained.get(candidate.match_id)
        if known is not None and known[0].same_state(candidate):
            return known[1]
        explanation = right_sized(orjson.dumps(_explanation_to_wire(self.engine.explain(candidate))))
        member = (candidate_to_wire(candidate), explanation)
        self._explained[candidate.match_id] = (candidate, member)
        return member


class ShardStage:
    """The engines of the shard-log partitions this worker owns, over the shared book table.

    ``store`` is the changelog-backed table (a plain dict in unit tests); keys are ``"<shard>|<kind>:<id>"``
    and ``"<shard>|@"``.
    """

    def __init__(
        self,
        store: MutableMapping[str, bytes],
        *,
        shards: int,
        config: MatchingConfig,
        analyzer: TextAnalyzer,
    ) -> None:
        self.store = store
        self.shards = shards
        self.config = config
        self.analyzer = analyzer
        self._engines: dict[int, _PartitionEngine] = {}
        self._building: dict[int, object] = {}
        """A token per shard being rebuilt (:meth:`building`): a rebuild whose token was dropped or
        replaced meanwhile is not kept."""
        self._entities: dict[bytes, tuple[InputEvent, Entity]] = {}
        """The last events decoded, with their entities: every shard of this worker reads each demand and
        request (and each offer, for the patent registry), so decoding and tokenising once is enough."""

    def owned(self) -> set[int]:
        return set(self._engines)

    def unanswered(self) -> int:
        """Seekers changed since the last answers, over the shards built here."""
        return sum(len(part.unanswered) for part in self._engines.values())

    def applied_through(self, shard: int) -> int:
        """The highest shard-log offset whose effects the built shard's book holds (-1 for none)."""
        return self._engines[shard].applied_through

    def drop(self, shard: int) -> None:
        self._engines.pop(shard, None)
        self._building.pop(shard, None)

    def is_built(self, shard: int) -> bool:
        return shard in self._engines

    def apply(
        self, shard: int, offset: int | None, key: bytes, value: bytes, event: InputEvent | None = None
    ) -> ShardStep:
        """Apply one valid event (a shard-log record, or an input event a direct worker takes at once),
        and mark the seekers it changed for :meth:`take_answers`. The caller builds the shard first
        (:meth:`build`).

        ``offset`` is None for a valid input event applied without the shard log, which only a direct
        service does: its answers go to a merger in the same process, in order, and that merger starts
        anew with each rebuild, so they need no tag of their own and keep the last one. Such an event
        comes decoded (``event``): the intake has just validated it, and is not decoded again."""
        part = self._engines[shard]
        event, entity = self._entity(key, value, event)
        began = time.perf_counter()
        result = part.engine.apply_entity(entity, event)
        engine_seconds = time.perf_counter() - began
        trigger = (event.event_id, event.occurred_at.isoformat())
        self._store_changes(part, shard, key.decode(), value, result, event)
        if offset is not None:
            part.applied_through = max(part.applied_through, offset)
        self.store[f"{shard}|{META}"] = orjson.dumps(
            {"offset": part.applied_through, "watermark": part.engine.shards[0].book.watermark, "trigger": trigger}
        )
        if result.notices:
            part.remember(result.notices)
            part.mark(result.notices, trigger)
        return ShardStep(result.outcome, trigger_kind(event), result.candidates, engine_seconds)

    def _entity(self, key: bytes, value: bytes, event: InputEvent | None) -> tuple[InputEvent, Entity]:
        known = self._entities.get(value)
        if known is None:
            if event is None:
                event = _decode_trusted(key.decode().split(":", 1)[0], value)
            known = self._entities[value] = (event, entity_from_event(event, self.analyzer, self.config))
            if len(self._entities) > ENTITY_CACHE_SIZE:
                del self._entities[next(iter(self._entities))]
        return known

    def take_answers(self, shard: int) -> list[Answer]:
        """An answer for each seeker whose local top K changed since the last call (tagged with the
        last offset applied), or nothing if the shard is not built here."""
        part = self._engines.get(shard)
        return part.take_answers() if part is not None else []

    def _store_changes(
        self, part: _PartitionEngine, shard: int, key: str, value: bytes, result: Result, event: InputEvent
    ) -> None:
        """Bring the table in line with the book: the event if it opened its entity, a tombstone for
        each entity that closed, nothing for the forgotten ones."""
        book = part.engine.shards[0].book
        if result.outcome == "accepted":
            self.store[f"{shard}|{key}"] = value
        closings = [closing for closing in result.closed if closing[2] != "updated"]
        if result.outcome == "accepted" and (kind_and_id := _split_key(key)) not in book.open:
            # Withdrawn, or expired on arrival: closed whether or not an open version was there.
            why = "withdrawn" if event.status == "withdrawn" else "expired"
            closings.append((*kind_and_id, why, trigger_kind(event) in ("buyer_demand", "financing_request")))
        for kind, entity_id, why, seeker in closings:
            if (kind, entity_id) not in book.open:
                version = book.version_of(kind, entity_id)  # type: ignore[arg-type]
                self.store[f"{shard}|{kind}:{entity_id}"] = _tombstone(version, why, book.watermark, seeker=seeker)
        for kind, entity_id in result.forgotten:
            self.store.pop(f"{shard}|{kind}:{entity_id}", None)

    def book_sizes(self, shard: int) -> dict[str, int]:
        """Open entries by side in one built shard (offers: the ones this shard owns)."""
        return self._engines[shard].engine.sizes()

    def build(self, shard: int) -> list[Answer]:
        """Rebuild the shard's engine from the table at once: :meth:`building` without a pause."""
        steps = self.building(shard)
        while True:
            try:
                next(steps)
            except StopIteration as built:
                return cast(list[Answer], built.value)

    def building(self, shard: int) -> Generator[None, None, list[Answer]]:
        """Rebuild the shard's engine from the table, silently, a few entities or seekers per step, and
        return the resync: an answer for every seeker the shard has stored (empty, with the reason, for
        those no longer open).

        A rebuild takes seconds per ten thousand entries of the book, and the service's event loop
        runs its web pages and its other stages only between steps: done at once, ``/health`` went
        unanswered for 22.5 s at a 15k-listing book. The shard counts as built only once the last step
        is done, and not at all if it was dropped (its partition revoked) or rebuilt anew meanwhile."""
        token = object()
        self._building[shard] = token
        self._engines.pop(shard, None)
        engine = Engine(self.config, self.analyzer, shards=self.shards, only_shard=shard, explain_notices=False)
        meta_raw = self.store.get(f"{shard}|{META}")
        meta = orjson.loads(meta_raw) if meta_raw is not None else None
        part = _PartitionEngine(engine, shard, applied_through=meta["offset"] if meta else -1)
        answers: list[Answer] = []
        if meta is not None:
            answers = yield from self._restore(part, meta)
        if self._building.get(shard) is token:
            del self._building[shard]
            self._engines[shard] = part
        return answers

    def _restore(self, part: _PartitionEngine, meta: dict[str, Any]) -> Generator[None, None, list[Answer]]:
        engine, shard = part.engine, part.shard
        book = engine.shards[0].book
        seekers: dict[SeekerKey, str] = {}
        """Seekers the table holds, with why a closed one closed."""
        tombstones: list[tuple[float, str, str, int, str]] = []
        for loaded, (key, value) in enumerate(self._stored(shard), start=1):
            if loaded % ENTITIES_PER_STEP == 0:
                yield
            kind, entity_id = _split_key(key)
            if value.startswith(_TOMBSTONE_PREFIX):
                closed = orjson.loads(value)
                tombstones.append((closed["at"], kind, entity_id, closed["version"], closed["closed"]))
                if closed["seeker"]:
                    seekers[(kind, entity_id)] = closed["closed"]
                continue
            event = _decode_trusted(kind, value)
            withdrawn = event.status == "withdrawn"  # tables written before tombstones
            entity = entity_from_event(event, self.analyzer, self.config)
            engine.load(entity, withdrawn=withdrawn)
            if not isinstance(entity, Offer) and not (isinstance(entity, Demand) and entity.is_financier):
                seekers[(kind, entity_id)] = "withdrawn" if withdrawn else "expired"  # if the watermark closes it
        for closed_at, kind, entity_id, version, _ in sorted(tombstones):
            book.remember_closed(kind, entity_id, version, closed_at=closed_at)  # type: ignore[arg-type]
        engine.advance(meta["watermark"])
        for _ in engine.rebuilding_views(SEEKERS_PER_STEP):
            yield
        trigger = (meta["trigger"][0], meta["trigger"][1])
        answers = []
        for answered, (seeker, why_closed) in enumerate(sorted(seekers.items()), start=1):
            if answered % SEEKERS_PER_STEP == 0:
                yield  # each answer explains its members anew
            answer = part.answer(seeker, meta["offset"], {}, trigger)
            if not answer.members:
                # Closed, or open with nothing local: whatever the merger holds from us has left.
                reason = "superseded" if seeker in book.open else why_closed
                answer = Answer(seeker, shard, meta["offset"], [], {"*": reason}, trigger)
            answers.append(answer)
        return answers

    def _stored(self, shard: int) -> Iterator[tuple[str, bytes]]:
        prefix = f"{shard}|"
        for key, value in list(self.store.items()):
            if key.startswith(prefix) and key != prefix + META:
                yield key[len(prefix) :], value


_TOMBSTONE_PREFIX = b'{"closed":'


def _tombstone(version: int, why: str, closed_at: float, *, seeker: bool) -> bytes:
    return right_sized(orjson.dumps({"closed": why, "version": version, "at": closed_at, "seeker": seeker}))


def shard_of_key(key: str) -> int:
    """The shard of a book-table key (``"<shard>|..."``), which is its changelog partition."""
    return int(key.split("|", 1)[0])


def _split_key(key: str) -> tuple[str, str]:
    kind, entity_id = key.split(":", 1)
    return kind, entity_id


def _decode_trusted(kind: str, value: bytes) -> InputEvent:
    """Decode a record the intake already validated: a failure here is a bug, not bad input."""
    event = decode(value, EVENT_TYPES[kind], max_bytes=len(value) + 1)
    if isinstance(event, Rejection):
        raise ValueError(f"shard log holds an invalid {kind} event: {event.summary()}")
    return event
