"""``patentmatch worker``: create the public topics if needed, then run the faust worker until stopped.

SIGTERM and Ctrl-C stop it gracefully (faust commits what it has processed); a SIGKILL loses nothing
either, since what was not committed is read again.

On a terminal the log is faust's coloured text; otherwise (a container, a log collector) it is JSON
lines, one object per record with the structured fields the code passes (event keys, match ids, error
kinds, offsets) — never an event's payload.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

import faust
from aiokafka.errors import KafkaError

from streams.kafka_io import ensure_topics
from streams.service import build_app, internal_topics, public_topics
from streams.settings import Settings

__all__ = ["json_logging_config", "run_worker"]


def json_logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that writes JSON lines to standard output."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"level": level, "handlers": ["default"]},
    }


GC_THRESHOLDS = (700, 10, 100)
"""Python's defaults are (700, 10, 10). A full collection walks every object of a heap of millions (the
book, the indexes, the emitted matches): in bench.e2e at 20k, 28% of the worker's CPU went to them.
Ten times fewer full collections; the young generations, where the cycles asyncio and aiokafka make
die, are collected as often as before. A larger first threshold measured fewer collections still but
an RSS that kept rising in tests/test_load.py's churning market."""


def run_worker(settings: Settings, bootstrap: str) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    internal, configs = internal_topics(settings)
    try:
        loop.run_until_complete(
            ensure_topics(
                bootstrap, {**public_topics(settings), **internal}, configs=configs, security=settings.security
            )
        )
    except KafkaError as exc:
        # Refused credentials, an unreachable cluster, missing ACLs: say so in one line and stop.
        user = f" as {settings.security.username}" if settings.security.username else ""
        sys.exit(
            f"patentmatch worker: cannot set up its topics on {bootstrap}{user} ({settings.security.protocol}): {exc}"
        )
    app = build_app(settings, bootstrap)
    gc.set_threshold(*GC_THRESHOLDS)
    logging_config = None if sys.stdout.isatty() else json_logging_config(settings.log_level)
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, quiet=True, logging_config=logging_config)
    worker.execute_from_commandline()
