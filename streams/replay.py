"""Publishing event logs to the input topics (``patentmatch replay``), and reading the output back.

A log is JSON lines, one input event per line; its kind (and so its topic) is told by its id field
(``offer_id``, ``demand_id``, ``request_id``), and the record is keyed by that id so that the versions
of one entity stay in order on one partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.kafka_io import client_options, read_to_end
from streams.settings import PLAINTEXT, KafkaSecurity, Settings, Topics

__all__ = ["kind_of_document", "publish_log", "read_log", "read_topic", "record_of"]

_ID_FIELDS = (("offer_id", "offer"), ("demand_id", "demand"), ("request_id", "financing"))


def kind_of_document(document: dict[str, Any]) -> str:
    for field, kind in _ID_FIELDS:
        if field in document:
            return kind
    raise ValueError("not an input event: no offer_id, demand_id or request_id")


def record_of(document: dict[str, Any], topics: Topics) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of one event document."""
    kind = kind_of_document(document)
    topic = {"offer": topics.offers, "demand": topics.demands, "financing": topics.financing}[kind]
    entity_id = document[{"offer": "offer_id", "demand": "demand_id", "financing": "request_id"}[kind]]
    return topic, str(entity_id).encode(), orjson.dumps(document)


def read_log(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                yield orjson.loads(line)


async def publish_log(
    bootstrap: str,
    settings: Settings,
    records: Iterable[tuple[str, bytes, bytes]],
    *,
    rate_per_s: float | None = None,
    on_sent: Callable[[int], None] | None = None,
    throttle: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Publish ``(topic, key, value)`` records in order, optionally paced to ``rate_per_s``; wait for
    every acknowledgement. Returns how many were sent.

    Each record is drawn from ``records`` when it is due, after the pacing's wait, so a generator that
    stamps its records (a benchmark timing each from its publication) stamps them as they go out. (The
    end of ``records`` is found the same way: a paced replay waits one more interval before it returns.)

    ``throttle``, when given, is awaited every hundred records, before the next is drawn: back-pressure
    from the consumer (it returns once the consumer has caught up enough). The pacing then resumes
    from that moment, without a burst to make up for the wait."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=8 << 20,
        **client_options(settings.security),
    )
    await producer.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    pending: list[asyncio.Future[Any]] = []
    sent = 0
    remaining = iter(records)
    try:
        while True:
            if throttle is not None and sent % 100 == 0:
                waited_from = loop.time()
                await throttle()
                started += loop.time() - waited_from
            if rate_per_s:
                delay = started + sent / rate_per_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            record = next(remaining, None)
            if record is None:
                break
            topic, key, value = record
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            if on_sent is not None and sent % 500 == 0:
                on_sent(500)
        await asyncio.gather(*pending)
        if on_sent is not None:
            on_sent(sent % 500)
        return sent
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, *, security: KafkaSecurity = PLAINTEXT) -> list[dict[str, Any]]:
    """Every record of a JSON topic, from the beginning to its current end, partition by partition."""
    return [orjson.loads(value) for value in await read_to_end(bootstrap, topic, security=security)]
