"""Hostile input, short form (issue 6, scenario 5): 10% garbage mixed into a valid market stream.

Every bad record is dead-lettered exactly once with the right error kind, every valid event is matched
as the oracle says, and the worker neither dies nor logs an error. Stale versions, repeated event ids
and events for entities never seen are *valid* records: they are not dead-lettered, they change
nothing the oracle would not change.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import orjson

from matcher.market import Market
from streams.replay import record_of
from streams.supervision import Deployment
from tests.service_helpers import dead_letters, eventually, market_events, prepare, publish, settle_on_oracle


def garbage(template: dict[str, Any], rng: random.Random) -> list[tuple[str, bytes, str]]:
    """One record of each kind of garbage: (name, value, the error kind it must be dead-lettered with)."""
    raw = orjson.dumps(template)
    return [
        ("random bytes", bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000))), "decode"),
        ("truncated JSON", raw[: rng.randint(1, len(raw) - 1)], "decode"),
        ("deeply nested JSON", b"[" * 5000 + b"]" * 5000, "decode"),
        ("5 MB record", orjson.dumps({**template, "padding": "x" * (5 << 20)}), "too_large"),
        ("wrong types", orjson.dumps({**template, "patents": "many", "keywords": 7}), "schema"),
        ("huge string", orjson.dumps({**template, "keywords": ["专利" * 100_000]}), "schema"),
        ("invalid UTF-8", raw[:30] + b"\xc3\x28\xff" + raw[33:], "decode"),
        ("unknown schema version", orjson.dumps({**template, "schema_version": 99}), "schema"),
        ("unknown field", orjson.dumps({**template, "colour": "red"}), "schema"),
        ("empty record", b"", "decode"),
    ]


def odd_but_valid(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An event for an entity never seen, a stale version, and a repeated event id."""
    offers = [d for d in documents if "offer_id" in d]
    unknown = {**offers[0], "offer_id": "offer-never-seen", "event_id": "evt-never-seen", "status": "withdrawn"}
    stale = {**offers[1], "version": 1, "event_id": "evt-stale-copy", "keywords": ["stale"]}
    repeated = dict(offers[2])
    return [unknown, stale, repeated]


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
