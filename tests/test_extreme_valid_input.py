"""Valid events at the edges of the contract never break the engine.

The decode properties prove that bad bytes are rejected without raising. This is the other half: an
event the contract accepts, with a field pushed to its limit (an amount of a millionth or of 1e15, the
longest text, an empty or a full list, the largest version), must be matched like any other. No
exception (one would stop the worker on a valid record, again at every restart), every notice a valid
match event, and the open matches equal to the oracle's, in the engine and through the service's
stages (intake, shards, answers on the wire, merger) alike.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import event as statistic
from hypothesis import strategies as st

from matcher import Engine, oracle_matches
from matcher.market import Market, MarketMix
from schemas import EVENT_TYPES, InputEvent, Rejection, decode
from streams.audit import audit
from tests.test_engine_oracle import state
from tests.test_stages import run_stages

EMITTED = datetime(2030, 1, 1, tzinfo=UTC)
KIND_OF_ID = {"offer_id": "offer", "demand_id": "demand", "request_id": "financing"}

AMOUNTS = ["0.000001", "0.004", "1", "999999999999999.99", "1000000000000000"]
TEXTS = ["专", "x" * 200, "专利" * 100, " padded ", "émoji 🔋 électrode"]
INTEGERS = [0, 1, 2, 999_999_999, 1_000_000_000]
FLOATS = [0.0, 1e-9, 0.5, 1.0]


def _leaves(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(document, dict):
        return [leaf for key, value in document.items() for leaf in _leaves(value, (*prefix, key))]
    if isinstance(document, list):
        return [prefix, *(leaf for i, value in enumerate(document) for leaf in _leaves(value, (*prefix, i)))]
    return [prefix]


def _extremes(path: tuple[Any, ...], value: Any) -> list[Any]:
    """Values at the limits for this field, by its name and type (the contract decides which are valid)."""
    if isinstance(value, list):
        return [[], value * 50, value[:1] * 200]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return INTEGERS
    if isinstance(value, float):
        return FLOATS
    if isinstance(value, str) and path and path[-1] in ("amount", "max", "min"):
        return AMOUNTS
    if isinstance(value, str) and path and str(path[-1]).endswith(("_at", "_date")):
        return ["1900-01-01T00:00:00+00:00", "2999-12-31T23:59:59+14:00", "1900-01-01", "2999-12-31"]
    return TEXTS


def _valid_event(document: dict[str, Any]) -> InputEvent | None:
    kind = next(KIND_OF_ID[key] for key in KIND_OF_ID if key in document)
    decoded = decode(orjson.dumps(document), EVENT_TYPES[kind])
    return None if isinstance(decoded, Rejection) else decoded


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 1000), shards=st.sampled_from([1, 2]))
def test_a_valid_event_at_the_limits_is_matched_like_any_other(data: st.DataObject, seed: int, shards: int) -> None:
    market = Market(seed, mix=MarketMix(offers=0.4, buyers=0.3, financiers=0.15, requests=0.15))
    documents = json.loads(json.dumps(market.lifecycle(30, expiring=0.2), default=str))
    pushed = 0
    for _ in range(data.draw(st.integers(1, 8))):
        index = data.draw(st.integers(0, len(documents) - 1))
        document = json.loads(json.dumps(documents[index]))
        leaves = [leaf for leaf in _leaves(document) if leaf != ("event_id",)]  # a repeated id is a redelivery
        money = [leaf for leaf in leaves if leaf and leaf[-1] in ("amount", "max", "min")]
        path = data.draw(st.sampled_from(money if money and data.draw(st.booleans()) else leaves))
        target = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = data.draw(st.sampled_from(_extremes(path, target[path[-1]])))
        if _valid_event(document) is not None:
            documents[index] = document
            pushed += 1
    events = [e for e in map(_valid_event, documents) if e is not None]
    assert len(events) == len(documents), "the generated market itself is valid"
    statistic(f"fields pushed: {min(pushed, 3)}{'+' if pushed > 3 else ''}")

    engine = Engine(shards=shards)
    for input_event in events:
        for notice in engine.apply(input_event).notices:
            notice.to_event(EMITTED)
    oracle = oracle_matches(events)
    assert state(engine.open_matches()) == state(oracle)
    _, _, published = run_stages(documents)
    assert audit(published, oracle).equal
