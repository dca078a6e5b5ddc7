"""The ``patentmatch`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading

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
    if not settings.kafka_bootstrap:
        console.print("[red]set PATENTMATCH_KAFKA_BOOTSTRAP[/red] (run `patentmatch kafka` for a local broker)")
        raise typer.Exit(2)
    run_worker(settings, settings.kafka_bootstrap)


def main() -> None:
    app(prog_name="patentmatch")


if __name__ == "__main__":
    sys.exit(main())
