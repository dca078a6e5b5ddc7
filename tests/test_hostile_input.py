"""Hostile input, short form (issue 6, scenario 5): 10% garbage mixed into a valid market stream.

Every bad record is dead-lettered exactly once with the right error kind, every valid event is matched
as the oracle says, and the worker neither dies nor logs an error. Stale versions, repeated event ids
and events for entities never seen are *valid* records: they are not dead-lettered, they change
nothing the oracle would not change.
"""

from __future__ import annotations

import random
from collections import Counter

import orjson

from matcher.market import Market
from streams.harness import (
    dead_letters,
    eventually,
    garbage,
    market_events,
    odd_but_valid,
    prepare,
    publish,
    settle_on_oracle,
)
from streams.replay import record_of
from streams.supervision import Deployment


async def test_garbage_is_dead_lettered_once_and_valid_events_still_match(deployment: Deployment) -> None:
    await prepare(deployment)
    worker = deployment.start_worker()
    rng = random.Random(5)
    documents = Market(31).lifecycle(400, expiring=0.1)
    documents += odd_but_valid(documents)
    t = deployment.topics
    stream: list[tuple[str, bytes, bytes]] = [record_of(d, t) for d in documents]
    bad: dict[bytes, str] = {}
    template = next(d for d in documents if "offer_id" in d)
    kinds = garbage(template, rng)
    for i in range(len(stream) // 10):
        name, value, error_kind = kinds[i % len(kinds)]
        key = f"bad-{i}-{name}".encode()
        bad[key] = error_kind
        position = rng.randint(0, len(stream))
        stream.insert(position, (rng.choice([t.offers, t.demands, t.financing]), key, value))
    await publish(deployment, stream)

    await settle_on_oracle(deployment, market_events(documents), timeout_s=180)

    async def every_bad_record_dead_lettered() -> bool:
        return len(await dead_letters(deployment)) >= len(bad)

    await eventually(every_bad_record_dead_lettered, timeout_s=60, dep=deployment)
    letters = await dead_letters(deployment)
    per_key = Counter(letter["key"] for letter in letters)
    assert set(per_key) == {k.decode() for k in bad}, "only the garbage is dead-lettered"
    assert set(per_key.values()) == {1}, "each bad record exactly once"
    assert {letter["key"]: letter["error_kind"] for letter in letters} == {k.decode(): v for k, v in bad.items()}
    assert all(letter["errors"] for letter in letters), "every dead letter says why"

    assert not worker.died
    log = worker.log_path.read_text(errors="replace")
    records = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records, "the worker logs JSON lines off a terminal"
    errors = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    # aiokafka logs the broker's "coordinator not available yet" at ERROR while a new group's offsets
    # topic is created, and retries: not about the input.
    assert [r for r in errors if "GroupCoordinatorNotAvailable" not in r["message"]] == []
    assert sum("Worker]: Starting" in r["message"] for r in records) == 1, "the worker never restarted"
