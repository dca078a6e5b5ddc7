"""Constrained scalar types shared by every event: codes, timestamps, text, amounts.

Each type is strict where the contract is: a number is never read from a string (except decimal
amounts, which the contract allows as strings), a timestamp is an RFC 3339 string with an offset, a
code is checked against the ISO lists that pycountry keeps current.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StrictInt, StringConstraints

from schemas.ipc import InvalidIpcCode, normalize_ipc

__all__ = [
    "AmountValue",
    "CountryCode",
    "CurrencyCode",
    "EntityId",
    "IpcCode",
    "IsoDate",
    "LongText",
    "PositiveInt",
    "RegionCode",
    "ShortText",
    "StrictBool",
    "Term",
    "Timestamp",
    "Title",
]

MAX_AMOUNT = Decimal("1e15")

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    # EP (European patents) and WO (PCT) are patent territories, not countries.
    return frozenset(c.alpha_2 for c in pycountry.countries) | {"EP", "WO"}


@lru_cache(maxsize=1)
def _subdivisions() -> frozenset[str]:
    return frozenset(s.code for s in pycountry.subdivisions)


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-03-01T09:30:00+08:00")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be a date YYYY-MM-DD")
    return value


def _country(value: str) -> str:
    if value not in _countries():
        raise ValueError(f"not an ISO 3166-1 alpha-2 country code: {value!r}")
    return value


def _region(value: str) -> str:
    if value in _subdivisions() or (len(value) == 2 and value in _countries()):
        return value
    raise ValueError(f"not an ISO 3166-2 region code (e.g. CN-BJ, US-CA): {value!r}")


def _currency(value: str) -> str:
    if value not in _currencies():
        raise ValueError(f"not an ISO 4217 currency code: {value!r}")
    return value


def _ipc(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    try:
        return normalize_ipc(value)
    except InvalidIpcCode as exc:
        raise ValueError(str(exc)) from None


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError("must be a decimal string or a number")
    try:
        amount = Decimal(str(value).strip()) if isinstance(value, (str, float)) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError("must be a finite amount greater than 0")
    if amount > MAX_AMOUNT:
        raise ValueError("must be at most 1e15")
    return amount


def _text(max_length: int) -> Any:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length, strict=True)


EntityId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^\S+$", strict=True)]
ShortText = Annotated[str, _text(200)]
Term = Annotated[str, _text(64)]
Title = Annotated[str, _text(500)]
LongText = Annotated[str, _text(10_000)]
PositiveInt = Annotated[StrictInt, Field(ge=1, le=1_000_000_000)]
Timestamp = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$", strict=True), AfterValidator(_country)]
RegionCode = Annotated[
    str, StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$", strict=True), AfterValidator(_region)
]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$", strict=True), AfterValidator(_currency)]
IpcCode = Annotated[
    str,
    BeforeValidator(_ipc),
    Field(json_schema_extra={"type": "string", "examples": ["H01M 10/0525", "h01m10/525", "G06F"]}),
]
AmountValue = Annotated[
    Decimal,
    BeforeValidator(_amount),
    Field(json_schema_extra={"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}]}),
]
