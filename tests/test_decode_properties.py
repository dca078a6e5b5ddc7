"""Whatever arrives, decode answers with a model or a structured Rejection: it never raises."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import EVENT_TYPES, Rejection, decode
from streams.examples import example_events

MODELS = list(EVENT_TYPES.values())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=40,
)


def check(raw: bytes) -> None:
    for model in MODELS:
        result = decode(raw, model)
        assert isinstance(result, (Rejection, model))
        if isinstance(result, Rejection):
            assert result.error_kind in ("decode", "schema", "semantic", "too_large")
            assert result.errors and all(isinstance(e.message, str) and e.message for e in result.errors)


@settings(max_examples=400)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json(document: Any) -> None:
    check(json.dumps(document).encode())


EXAMPLES = [json.loads(e.raw) for e in example_events()]


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


@settings(max_examples=400)
@given(st.data())
def test_examples_with_one_field_replaced(data: st.DataObject) -> None:
    """Near-valid events are the hard case: every field of a real example replaced by anything."""
    document = json.loads(json.dumps(data.draw(st.sampled_from(EXAMPLES))))
    path = data.draw(st.sampled_from(_paths(document)))
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = data.draw(json_values)
    check(json.dumps(document).encode())
