"""First contact with the real broker: example events published with aiokafka, read back, decoded."""

from __future__ import annotations

from schemas import EVENT_TYPES, Rejection, decode, entity_id
from streams.examples import decode_example, example_events
from streams.kafka_io import Record, create_topics, publish, read_records


async def test_examples_survive_a_round_trip_through_kafka(kafka_bootstrap: str, topic_prefix: str) -> None:
    topics = {kind: f"{topic_prefix}.{kind}" for kind in EVENT_TYPES}
    await create_topics(kafka_bootstrap, topics.values(), partitions=2)
    records = []
    for example in example_events():
        event = decode_example(example)
        assert not isinstance(event, Rejection)
        records.append(Record(topics[example.kind], entity_id(event).encode(), example.raw))
    assert await publish(kafka_bootstrap, records) == len(records)

    for kind, topic in topics.items():
        sent = {r.key: r.value for r in records if r.topic == topic}
        received = await read_records(kafka_bootstrap, topic, count=len(sent))
        assert {r.key: r.value for r in received} == sent
        for record in received:
            event = decode(record.value, EVENT_TYPES[kind])
            assert isinstance(event, EVENT_TYPES[kind])
            assert entity_id(event).encode() == record.key
