"""``patentmatch worker``: create the public topics if needed, then run the faust worker until stopped.

SIGTERM and Ctrl-C stop it gracefully (faust commits what it has processed); a SIGKILL loses nothing
either, since what was not committed is read again.

On a terminal the log is faust's coloured text; otherwise (a container, a log collector) it is JSON
lines, one object per record with the structured fields the code passes (event keys, match ids, error
kinds, offsets) — never an event's payload.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from typing import Any

import faust
from aiokafka.errors import KafkaError

from streams.gc_tuning import tune_gc
from streams.kafka_io import ensure_topics
from streams.metrics import GC_PAUSES
from streams.service import build_app, internal_topics, public_topics
from streams.settings import Settings

__all__ = ["RepeatsCollapsed", "collapse_repeated_client_errors", "json_logging_config", "run_worker"]


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


class RepeatsCollapsed(logging.Filter):
    """Lets each message of a logger through at most once per ``window_s``, by its template; the next
    one let through carries ``repeated``, how many were held back meanwhile.

    While no broker answers, aiokafka retries its metadata request with no backoff and logs two errors
    per try ("Unable connect to node …", "Unable to update metadata from …"): about 8,000 lines a
    second from one worker in bench.reliability's broker restart, 9.5 MB of log for an 11 s outage."""

    def __init__(self, window_s: float = 10.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._passed: dict[tuple[str, int, str], float] = {}
        self._held: Counter[tuple[str, int, str]] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        passed = self._passed.get(key)
        if passed is not None and record.created - passed < self.window_s:
            self._held[key] += 1
            return False
        if len(self._passed) > 1000:  # templates built with their values (f-strings): forget the old
            self._passed = {k: t for k, t in self._passed.items() if record.created - t < self.window_s}
        self._passed[key] = record.created
        if held := self._held.pop(key, 0):
            record.repeated = held
        return True


def collapse_repeated_client_errors(window_s: float = 10.0) -> None:
    """Attach one :class:`RepeatsCollapsed` to every aiokafka logger (a logger's filters see only the
    records made on it, not those of its children)."""
    repeats = RepeatsCollapsed(window_s)
    names = [name for name in logging.root.manager.loggerDict if name.split(".")[0] == "aiokafka"]
    for name in ["aiokafka", *names]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatsCollapsed) for f in logger.filters):
            logger.addFilter(repeats)


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
    tune_gc(GC_PAUSES.observe)
    collapse_repeated_client_errors()
    logging_config = None if sys.stdout.isatty() else json_logging_config(settings.log_level)
    worker = faust.Worker(app, loop=loop, loglevel=settings.log_level, quiet=True, logging_config=logging_config)
    worker.execute_from_commandline()
