"""The contract is strict: every rule of DESIGN.md's "Events" section, one case each."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas import (
    BuyerDemand,
    FinancingRequest,
    PatentOffer,
    Rejection,
    dead_letter,
    decode,
    encode,
)
from streams.examples import example_events


def example(name: str) -> dict[str, Any]:
    for ex in example_events():
        if ex.name == name:
            return json.loads(ex.raw)
    raise KeyError(name)


OFFER = "offer_battery_portfolio_cn_js.json"
DEMAND = "demand_automaker_battery_zh.json"
LENDER = "demand_beijing_bank_pledge_lender.json"
REQUEST = "financing_sme_pledge_loan.json"


def rejected(document: Any, model: type, kind: str) -> Rejection:
    result = decode(orjson.dumps(document), model)
    assert isinstance(result, Rejection), f"accepted: {document!r:.200}"
    assert result.error_kind == kind, result
    return result


def paths(rejection: Rejection) -> set[str]:
    return {e.path for e in rejection.errors}


def with_change(name: str, path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(example(name))
    *parents, last = path.split(".")
    target: Any = document
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return document


_DELETE = object()


def test_examples_decode() -> None:
    for ex in example_events():
        model = {"offer": PatentOffer, "demand": BuyerDemand, "financing": FinancingRequest}[ex.kind]
        assert isinstance(decode(ex.raw, model), model), ex.name


@pytest.mark.parametrize(
    ("path", "value", "error_path"),
    [
        ("surprise", 1, "surprise"),
        ("seller.nickname", "x", "seller.nickname"),
        ("version", "1", "version"),
        ("version", 0, "version"),
        ("version", 1.0, "version"),
        ("version", True, "version"),
        ("schema_version", 2, "schema_version"),
        ("event_id", "", "event_id"),
        ("event_id", "x" * 65, "event_id"),
        ("occurred_at", "2026-03-02T09:15:00", "occurred_at"),
        ("occurred_at", "2026-03-02", "occurred_at"),
        ("occurred_at", 1767225600, "occurred_at"),
        ("occurred_at", "yesterday", "occurred_at"),
        ("status", "deleted", "status"),
        ("seller.name", "   ", "seller.name"),
        ("seller.region", "CN-XX", "seller.region"),
        ("seller.region", "China", "seller.region"),
        ("seller.kind", "company", "seller.kind"),
        ("asking_price.currency", "RMB", "asking_price.currency"),
        ("asking_price.currency", "cny", "asking_price.currency"),
        ("asking_price.amount", "-5", "asking_price.amount"),
        ("asking_price.amount", "0", "asking_price.amount"),
        ("asking_price.amount", "abc", "asking_price.amount"),
        ("asking_price.amount", "NaN", "asking_price.amount"),
        ("asking_price.amount", True, "asking_price.amount"),
        ("asking_price.amount", "1e16", "asking_price.amount"),
        ("patents", [], "patents"),
        ("patents.0.abstract", "长" * 10_001, "patents.0.abstract"),
        ("patents.0.title", "", "patents.0.title"),
        ("patents.0.ipc", ["not-a-code"], "patents.0.ipc.0"),
        ("patents.0.number", "114514340", "patents.0.number"),
        ("patents.0.filing_date", "2021/11/18", "patents.0.filing_date"),
        ("patents.0.language", "de", "patents.0.language"),
        ("deal_types", ["sale"], "deal_types.0"),
        ("keywords", ["k" * 65], "keywords.0"),
        ("offer_id", _DELETE, "offer_id"),
    ],
)
def test_offer_schema_violations_are_rejected(path: str, value: Any, error_path: str) -> None:
    rejection = rejected(with_change(OFFER, path, value), PatentOffer, "schema")
    assert any(p.startswith(error_path) for p in paths(rejection)), rejection


def test_more_than_200_patents_is_rejected() -> None:
    document = example(OFFER)
    patent = document["patents"][0]
    document["patents"] = [{**patent, "number": f"CN{100000000 + i}B"} for i in range(201)]
    assert "patents" in paths(rejected(document, PatentOffer, "schema"))
    document["patents"] = document["patents"][:200]
    assert isinstance(decode(orjson.dumps(document), PatentOffer), PatentOffer)


@pytest.mark.parametrize(
    ("name", "path", "value", "model"),
    [
        (OFFER, "patents.0.expiry_date", "2020-01-01", PatentOffer),
        (OFFER, "expires_at", "2026-01-01T00:00:00+08:00", PatentOffer),
        (OFFER, "patents.1.number", "CN114514340B", PatentOffer),
        (DEMAND, "budget.min", "9000000", BuyerDemand),
        (DEMAND, "description", "   ", BuyerDemand),
        (DEMAND, "deal_types", ["non_exclusive_license"], BuyerDemand),
        (LENDER, "budget", _DELETE, BuyerDemand),
        (DEMAND, "max_loan_to_value", 0.3, BuyerDemand),
    ],
)
def test_contradictions_are_semantic(name: str, path: str, value: Any, model: type) -> None:
    rejected(with_change(name, path, value), model, "semantic")


def test_demand_ipc_codes_are_normalised_and_optional() -> None:
    demand = decode(orjson.dumps(with_change(DEMAND, "ipc", ["h01m10/525", "H01M4"])), BuyerDemand)
    assert isinstance(demand, BuyerDemand)
    assert demand.ipc == ["H01M 10/525", "H01M 4/00"]
    assert decode(orjson.dumps(example(DEMAND)), BuyerDemand).ipc == []  # type: ignore[union-attr]


def test_amounts_are_decimals_from_strings_or_numbers() -> None:
    offer = decode(orjson.dumps(with_change(OFFER, "asking_price.amount", "4500000.10")), PatentOffer)
    assert isinstance(offer, PatentOffer) and offer.asking_price is not None
    assert offer.asking_price.amount == Decimal("4500000.10")
    offer = decode(orjson.dumps(with_change(OFFER, "asking_price.amount", 120)), PatentOffer)
    assert isinstance(offer, PatentOffer) and offer.asking_price is not None
    assert offer.asking_price.amount == Decimal(120)


def test_collateral_by_number_or_in_full() -> None:
    request = decode(orjson.dumps(example(REQUEST)), FinancingRequest)
    assert isinstance(request, FinancingRequest)
    assert [c.number for c in request.collateral] == ["CN114514340B", "CN217114923U"]


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"", "decode"),
        (b"{", "decode"),
        (b"\xff\xfe{}", "decode"),
        (b'{"a": "\xed\xa0\x80"}', "decode"),
        (b"[" * 2000 + b"]" * 2000, "decode"),
        (b"[]", "schema"),
        (b'"text"', "schema"),
        (b"null", "schema"),
        (b"{}", "schema"),
    ],
)
def test_bytes_that_are_not_an_event(raw: bytes, kind: str) -> None:
    result = decode(raw, PatentOffer)
    assert isinstance(result, Rejection) and result.error_kind == kind


def test_oversize_records_are_not_parsed() -> None:
    result = decode(b" " * 2_000_000, PatentOffer)
    assert isinstance(result, Rejection) and result.error_kind == "too_large"
    result = decode(orjson.dumps(example(OFFER)), PatentOffer, max_bytes=100)
    assert isinstance(result, Rejection) and result.error_kind == "too_large"


def test_encode_then_decode_round_trips() -> None:
    for model, name in ((PatentOffer, OFFER), (BuyerDemand, DEMAND), (FinancingRequest, REQUEST)):
        event = decode(orjson.dumps(example(name)), model)
        assert isinstance(event, model)
        assert decode(encode(event), model) == event


def test_dead_letters_keep_coordinates_and_cap_the_value() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    raw = b'{"x": "' + "长".encode() * 40_000 + b'"}'
    rejection = decode(raw, PatentOffer)
    assert isinstance(rejection, Rejection)
    letter = dead_letter(raw, rejection, topic="patent.offers", partition=3, offset=42, key=b"k1",
                         received_at=now, value_cap=1000)  # fmt: skip
    assert (letter.source_topic, letter.partition, letter.offset, letter.key) == ("patent.offers", 3, 42, "k1")
    assert letter.value_truncated and letter.original_size == len(raw)
    assert letter.value_encoding == "utf-8" and len(letter.value.encode()) <= 1000
    assert letter.error_kind == "schema" and letter.errors
    binary = dead_letter(b"\xff" * 10, Rejection("decode", ()), topic="t", partition=0, offset=0, key=None,
                         received_at=now)  # fmt: skip
    assert binary.value_encoding == "base64" and not binary.value_truncated
