"""Bytes in, events out (and back), with orjson.

:func:`decode` is the only door from the wire into the system. Whatever the bytes, it returns either
the validated model or a :class:`Rejection` that says why, in the ``error_kind`` vocabulary of the
dead-letter topic:

- ``too_large``: the record is over the size cap; it is not even parsed;
- ``decode``:    not UTF-8 JSON (truncated, binary, nested past the parser's depth limit);
- ``schema``:    JSON, but not the event: wrong types, unknown or missing fields, bad codes;
- ``semantic``:  well formed, but fields contradict each other (expiry before filing, min > max, …).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from schemas.events import BuyerDemand, DeadLetter, FieldError, FinancingRequest, InputEvent, PatentOffer

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "EVENT_TYPES",
    "ErrorKind",
    "Rejection",
    "dead_letter",
    "decode",
    "encode",
]

DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
DEFAULT_DEAD_LETTER_VALUE_CAP = 64 * 1024

ErrorKind = Literal["decode", "schema", "semantic", "too_large"]
EVENT_TYPES: dict[str, type[InputEvent]] = {
    "offer": PatentOffer,
    "demand": BuyerDemand,
    "financing": FinancingRequest,
}

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a record was refused: one error kind and the problems found, each with its field path."""

    error_kind: ErrorKind
    errors: tuple[FieldError, ...]

    def summary(self) -> str:
        first = self.errors[0] if self.errors else FieldError(path="", message="")
        more = f" (+{len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return f"{self.error_kind}: {first.path or '<record>'}: {first.message}{more}"


def _reject(kind: ErrorKind, message: str, path: str = "") -> Rejection:
    return Rejection(kind, (FieldError(path=path, message=message),))


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def decode(raw: bytes, model: type[M], *, max_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> M | Rejection:
    """Validate one record as ``model``; never raises for any input bytes."""
    if len(raw) > max_bytes:
        return _reject("too_large", f"record is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _reject("decode", f"not UTF-8 JSON: {exc}")
    if not isinstance(document, dict):
        return _reject("schema", f"must be a JSON object, got {type(document).__name__}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = tuple(
            FieldError(path=_path(err["loc"]), message=err["msg"])
            for err in exc.errors(include_url=False, include_input=False)
        )
        semantic = all(err["type"] == "semantic" for err in exc.errors(include_url=False))
        return Rejection("semantic" if semantic else "schema", errors)


def encode(event: BaseModel) -> bytes:
    """The wire form of an event: compact UTF-8 JSON, decimals as strings, timestamps in RFC 3339."""
    return orjson.dumps(event.model_dump(mode="json", exclude_none=True))


def _as_text(kept: bytes, *, cut: bool) -> tuple[str, Literal["utf-8", "base64"]]:
    # A cut may fall inside a multi-byte character: drop up to three trailing bytes before giving up.
    for trim in range(4 if cut else 1):
        try:
            return kept[: len(kept) - trim].decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            continue
    return base64.b64encode(kept).decode("ascii"), "base64"


def dead_letter(
    raw: bytes,
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    received_at: datetime,
    value_cap: int = DEFAULT_DEAD_LETTER_VALUE_CAP,
) -> DeadLetter:
    """A dead letter for ``raw``: its coordinates, its value cut to ``value_cap`` (with the original size
    and SHA-256, so a huge record never makes a huge dead letter) and the reasons it was refused."""
    kept = raw[:value_cap]
    text, encoding = _as_text(kept, cut=len(raw) > value_cap)
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key.decode("utf-8", "replace") if key is not None else None,
        value=text,
        value_encoding=encoding,
        value_truncated=len(raw) > value_cap,
        original_size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        error_kind=rejection.error_kind,
        errors=list(rejection.errors),
        received_at=received_at,
    )
