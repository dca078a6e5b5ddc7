"""The public contract of patentmatch: event models, IPC codes, the codec and JSON Schema export."""

from schemas.codec import DEFAULT_MAX_RECORD_BYTES, EVENT_TYPES, Rejection, dead_letter, decode, encode
from schemas.events import (
    Budget,
    BuyerDemand,
    CollateralRef,
    DeadLetter,
    EntityRef,
    FieldError,
    FinancingRequest,
    InputEvent,
    MatchEvent,
    MatchFacts,
    Money,
    Party,
    Patent,
    PatentOffer,
)
from schemas.ipc import InvalidIpcCode, IpcLevel, ipc_level, ipc_levels, normalize_ipc

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "EVENT_TYPES",
    "Budget",
    "BuyerDemand",
    "CollateralRef",
    "DeadLetter",
    "EntityRef",
    "FieldError",
    "FinancingRequest",
    "InputEvent",
    "InvalidIpcCode",
    "IpcLevel",
    "MatchEvent",
    "MatchFacts",
    "Money",
    "Party",
    "Patent",
    "PatentOffer",
    "Rejection",
    "dead_letter",
    "decode",
    "encode",
    "ipc_level",
    "ipc_levels",
    "normalize_ipc",
]
