"""Validate and route: the service's front door.

Every record of the three public input topics is decoded against the model its topic promises. A bad
record becomes a dead letter (with its source coordinates and reasons). A valid event is copied to
every partition of the shard log: demands and financing requests are the stored queries every shard
answers, and although an offer is indexed only by the shard that owns it, every shard keeps the
versions, the patent registry and the watermark of the whole book. (A direct worker that holds its
one shard applies the decoded event at once instead: :mod:`streams.service`.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas import EVENT_TYPES, DeadLetter, FieldError, InputEvent, Rejection, dead_letter, decode, entity_id
from streams.settings import Settings

__all__ = ["Routed", "Source", "route"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None


@dataclass(frozen=True, slots=True)
class Routed:
    """A valid event and its shard-log record: the key says the kind (``offer:ID``), the value is the
    record as it arrived; it goes to every partition of the shard log."""

    event: InputEvent
    key: bytes
    value: bytes


def route(raw: bytes | None, source: Source, settings: Settings, *, received_at: datetime) -> Routed | DeadLetter:
    """Decode one input record and say where it goes: the shard log, or the dead-letter topic."""
    kind = _kind_of_topic(source.topic, settings)
    event = (
        decode(raw, EVENT_TYPES[kind], max_bytes=settings.max_record_bytes)
        if raw is not None
        else Rejection("decode", (FieldError(path="", message="the record has no value"),))
    )
    if isinstance(event, Rejection):
        return dead_letter(
            raw or b"",
            event,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            key=source.key,
            received_at=received_at,
            value_cap=settings.dead_letter_value_cap,
        )
    return Routed(event, f"{kind}:{entity_id(event)}".encode(), raw or b"")


def _kind_of_topic(topic: str, settings: Settings) -> str:
    topics = settings.topics
    return {topics.offers: "offer", topics.demands: "demand", topics.financing: "financing"}[topic]
