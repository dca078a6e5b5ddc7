"""``make demo``: a real broker, the example events published, read back and decoded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.table import Table

from schemas import EVENT_TYPES, Rejection, decode
from streams.examples import decode_example, entity_id, example_events, topic_for
from streams.kafka_io import Record, create_topics, publish, read_records
from streams.localkafka import LocalKafka
from streams.settings import Settings

__all__ = ["bootstrap_servers", "run_demo"]


@contextlib.contextmanager
def bootstrap_servers(settings: Settings, console: Console) -> Iterator[str]:
    """The configured cluster, or a local broker started for the duration of the block."""
    if settings.kafka_bootstrap:
        yield settings.kafka_bootstrap
        return
    with console.status("starting a local Apache Kafka broker…"):
        broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir).start()
    console.print(f"Apache Kafka {broker.broker_version} on {broker.bootstrap} (up in {broker.startup_seconds:.1f}s)")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


async def run_demo(settings: Settings, console: Console) -> None:
    topics = settings.topics
    examples = example_events()
    records = []
    for example in examples:
        event = decode_example(example)
        assert not isinstance(event, Rejection), f"{example.name}: {event.summary()}"
        topic = topic_for(example.kind, topics)
        records.append(Record(topic, entity_id(event).encode(), example.raw))
    with bootstrap_servers(settings, console) as bootstrap:
        await create_topics(bootstrap, [topics.offers, topics.demands, topics.financing])
        sent = await publish(bootstrap, records)
        console.print(f"published {sent} example events")
        table = Table(title="read back from Kafka and decoded")
        for column in ("topic", "partition@offset", "key", "event", "summary"):
            table.add_column(column)
        for kind, topic in (("offer", topics.offers), ("demand", topics.demands), ("financing", topics.financing)):
            expected = sum(1 for r in records if r.topic == topic)
            for record in await read_records(bootstrap, topic, count=expected):
                event = decode(record.value, EVENT_TYPES[kind])
                summary = event.summary() if isinstance(event, Rejection) else _summary(event)
                table.add_row(
                    topic, f"{record.partition}@{record.offset}", (record.key or b"").decode(),
                    type(event).__name__, summary,
                )  # fmt: skip
        console.print(table)


def _summary(event: object) -> str:
    for attribute in ("patents", "description", "purpose"):
        value = getattr(event, attribute, None)
        if isinstance(value, list):
            return f"{len(value)} patent(s): {value[0].title}"
        if isinstance(value, str):
            return value[:60]
    return ""
