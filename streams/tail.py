"""``patentmatch tail``: follow ``patent.matches`` and print each notification with its reasons."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.text import Text

from streams.kafka_io import client_options
from streams.settings import PLAINTEXT, KafkaSecurity

__all__ = ["follow_matches", "render"]


def render(event: dict[str, Any]) -> Text:
    """One line per notification (and one per reason under a match)."""
    seeker, counterpart = event["seeker"], event["counterpart"]
    line = Text()
    if event["type"] == "match":
        line.append(f"MATCH  #{event['rank']:<2} ", style="bold green")
        line.append(f"{event['kind']:<11} {seeker['id']} ⇄ {counterpart['id']}")
        if event.get("financier"):
            line.append(f" (financed by {event['financier']['id']})")
        line.append(f"  score {event['score']:.3f}", style="cyan")
        for reason in event.get("reasons", []):
            line.append(f"\n         · {reason}", style="dim")
    else:
        line.append("REVOKE     ", style="bold red")
        line.append(f"{event['kind']:<11} {seeker['id']} ⇄ {counterpart['id']}  ({event['reason']})")
    return line


async def follow_matches(
    bootstrap: str,
    topic: str,
    console: Console,
    *,
    from_beginning: bool = False,
    stop: Callable[[int], bool] | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> int:
    """Print notifications as they arrive until ``stop(count)`` says so (or forever). Returns the count."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        **client_options(security),
    )
    await consumer.start()
    count = 0
    try:
        while stop is None or not stop(count):
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for message in messages:
                    if message.value is not None:
                        console.print(render(orjson.loads(message.value)))
                        count += 1
            await asyncio.sleep(0)
        return count
    finally:
        await consumer.stop()
