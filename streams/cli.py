"""The ``patentmatch`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from streams.settings import Settings

app = typer.Typer(help="patentmatch: real-time matchmaking for patent transactions and IP financing.")
schemas_app = typer.Typer(help="The public contract (JSON Schema).")
app.add_typer(schemas_app, name="schemas")
console = Console()


@schemas_app.command("export")
def schemas_export(check: bool = typer.Option(False, help="Fail if the committed files differ.")) -> None:
    """Write the JSON Schema of every event into schemas/json/."""
    from schemas.jsonschema import SCHEMA_DIR, export_json_schemas, json_schemas

    if check:
        stale = [n for n, text in json_schemas().items() if (SCHEMA_DIR / n).read_text() != text]
        if stale:
            console.print(f"[red]out of date:[/red] {', '.join(stale)}")
            raise typer.Exit(1)
        console.print("JSON Schemas are up to date")
        return
    for path in export_json_schemas():
        console.print(f"wrote {path}")


@app.command()
def kafka() -> None:
    """Run a local single-node Apache Kafka (KRaft) on 127.0.0.1 until Ctrl-C."""
    from streams.localkafka import LocalKafka

    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with broker:
        console.print(
            f"Apache Kafka {broker.broker_version} on [bold]{broker.bootstrap}[/bold] "
            f"(up in {broker.startup_seconds:.1f}s). Ctrl-C stops it."
        )
        console.print(f"export PATENTMATCH_KAFKA_BOOTSTRAP={broker.bootstrap}")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    console.print("broker stopped")


@app.command()
def demo() -> None:
    """Start the local broker (unless PATENTMATCH_KAFKA_BOOTSTRAP is set), publish the example events
    and print them as they are read back and decoded."""
    from streams.demo import run_demo

    asyncio.run(run_demo(Settings(), console))


@app.command()
def worker() -> None:
    """Run the matching service (needs PATENTMATCH_KAFKA_BOOTSTRAP; `patentmatch kafka` gives one)."""
    from streams.worker import run_worker

    settings = Settings()
    run_worker(settings, _bootstrap(settings))


@app.command()
def replay(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines, one input event per line.")],
    rate: float = typer.Option(0.0, help="Events per second (0: as fast as the broker takes them)."),
) -> None:
    """Publish an event log to the input topics, with a progress bar and a final count."""
    from rich.progress import Progress

    from streams.kafka_io import ensure_topics
    from streams.replay import publish_log, read_log, record_of
    from streams.service import public_topics

    settings = Settings()
    bootstrap = _bootstrap(settings)
    records = [record_of(document, settings.topics) for document in read_log(path)]

    async def run() -> int:
        await ensure_topics(bootstrap, public_topics(settings), security=settings.security)
        with Progress(console=console) as progress:
            task = progress.add_task(f"replaying {path.name}", total=len(records))
            return await publish_log(
                bootstrap, settings, records, rate_per_s=rate or None,
                on_sent=lambda n: progress.advance(task, n),
            )  # fmt: skip

    sent = asyncio.run(run())
    console.print(f"published {sent} events to {settings.topics.offers}, {settings.topics.demands}, "
                  f"{settings.topics.financing}")  # fmt: skip


@app.command()
def tail(
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the first notification."),
) -> None:
    """Print match notifications, with their reasons, as they arrive (Ctrl-C stops)."""
    from streams.tail import follow_matches

    settings = Settings()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            follow_matches(
                _bootstrap(settings),
                settings.topics.matches,
                console,
                from_beginning=from_beginning,
                security=settings.security,
            )
        )


@app.command()
def market(
    size: int = typer.Option(2000, help="How many new listings (updates and withdrawals come on top)."),
    seed: int = typer.Option(7),
    out: Annotated[Path, typer.Option(help="Where to write the log.")] = Path("market.jsonl"),
) -> None:
    """Write a generated market (offers, demands, financing requests, updates, withdrawals) as JSON lines."""
    import orjson

    from matcher.market import Market

    documents = Market(seed).lifecycle(size)
    with out.open("wb") as f:
        for document in documents:
            f.write(orjson.dumps(document) + b"\n")
    console.print(f"wrote {len(documents)} events to {out}")


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        console.print("[red]set PATENTMATCH_KAFKA_BOOTSTRAP[/red] (run `patentmatch kafka` for a local broker)")
        raise typer.Exit(2)
    return settings.kafka_bootstrap


def main() -> None:
    app(prog_name="patentmatch")


if __name__ == "__main__":
    sys.exit(main())
