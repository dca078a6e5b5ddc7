"""The example events shipped with the contract, and where each one is published."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from schemas import EVENT_TYPES, InputEvent, Rejection, decode
from streams.settings import Topics

__all__ = ["Example", "example_events", "topic_for"]


@dataclass(frozen=True)
class Example:
    name: str
    kind: str
    raw: bytes


def example_events() -> list[Example]:
    """Every file under ``schemas/examples``, in name order (offers, demands and requests)."""
    folder = resources.files("schemas") / "examples"
    examples = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            examples.append(Example(entry.name, entry.name.split("_")[0], entry.read_bytes()))
    return examples


def topic_for(kind: str, topics: Topics) -> str:
    return {"offer": topics.offers, "demand": topics.demands, "financing": topics.financing}[kind]


def decode_example(example: Example) -> InputEvent | Rejection:
    return decode(example.raw, EVENT_TYPES[example.kind])
