"""The worker's log stays readable through a broker outage: aiokafka's retry errors are collapsed to
one line per template and window, with a count of those held back; the service's own lines are not.
A worker that dies is reported by its exception, not only by the shutdown that followed it."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.supervision import WorkerProcess
from streams.worker import RepeatsCollapsed, collapse_repeated_client_errors, json_logging_config


def record(msg: str, created: float, *args: object, name: str = "aiokafka") -> logging.LogRecord:
    r = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
    r.created = created
    return r


def test_a_message_repeated_within_the_window_passes_once_then_says_how_many_were_held() -> None:
    repeats = RepeatsCollapsed(window_s=10.0)
    template = "Unable connect to node with id %s: %s"
    passed = [repeats.filter(record(template, t / 1000, 1, "refused")) for t in range(8000)]
    assert passed[0] and sum(passed) == 1
    later = record(template, 10.5, 1, "refused")
    assert repeats.filter(later) and later.repeated == 7999
    assert repeats.filter(record("Unable to update metadata from %s", 10.6, [1])), "another template"
    assert repeats.filter(record(template, 10.7, 1, "refused", name="aiokafka.consumer.fetcher")), "another logger"
    fresh = record(template, 30.0, 1, "refused")
    assert repeats.filter(fresh) and not hasattr(fresh, "repeated")


def test_messages_built_with_their_values_do_not_grow_the_filter_without_bound() -> None:
    repeats = RepeatsCollapsed(window_s=1.0)
    for i in range(100_000):
        assert repeats.filter(record(f"offset {i} committed", i / 10))
    assert len(repeats._passed) <= 1001


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    logging.config.dictConfig(json_logging_config())
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)
    yield out
    root.handlers, root.level = handlers, level
    for logger in [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]:
        logger.filters = [f for f in logger.filters if not isinstance(f, RepeatsCollapsed)]


def test_the_worker_collapses_aiokafka_retries_but_not_its_own_lines(json_log: io.StringIO) -> None:
    import aiokafka.client  # noqa: F401  (the loggers exist once the modules are imported, as in the worker)

    collapse_repeated_client_errors(window_s=0.5)
    for _ in range(500):
        logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1, "refused")
        logging.getLogger("aiokafka.consumer.fetcher").error("Failed fetch messages from %s: %s", 1, "gone")
        logging.getLogger("patentmatch.service").info("dead letter", extra={"error_kind": "decode"})
    time.sleep(0.5)
    logging.getLogger("aiokafka").error("Unable connect to node with id %s: %s", 1, "refused")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    by_logger = {name: sum(line["logger"] == name for line in lines) for name in {line["logger"] for line in lines}}
    assert by_logger == {"aiokafka": 2, "aiokafka.consumer.fetcher": 1, "patentmatch.service": 500}
    assert lines[-1]["repeated"] == 499 and "refused" in lines[-1]["message"]


CRASHING_WORKER = """
import logging, logging.config, sys
from streams.worker import json_logging_config
logging.config.dictConfig(json_logging_config())
try:
    raise KeyError("the cause of the crash")
except KeyError:
    logging.getLogger("mode.services").exception("Crashed reason=%r", "KeyError")
for i in range(500):
    logging.getLogger("faust.agents.agent").info("[^---Agent %d]: Stopping...", i)
print("Traceback (most recent call last): raised again on the way out", file=sys.stderr)
sys.exit(3)
"""


def test_a_dead_workers_report_leads_with_the_exception_its_shutdown_buried(tmp_path: Path) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-c", CRASHING_WORKER], stdout=log_file, stderr=subprocess.STDOUT)
    worker = WorkerProcess(process, log_path, web_port=0)
    process.wait(timeout=60)
    assert worker.died
    assert "the cause of the crash" not in worker.log_tail(), "the tail alone would not say why"
    report = worker.death_report()
    assert f"pid {process.pid} exited with 3" in report
    assert "the cause of the crash" in report and "raised again on the way out" in report
    assert "Agent 499]: Stopping" in report, "and the end of the log follows"
    assert "Agent 10]: Stopping" not in report.split("the end of its log:")[0], "INFO records are not errors"


WAITING_WORKER = """
import logging, logging.config
from streams.worker import json_logging_config
logging.config.dictConfig(json_logging_config())
recovery = logging.getLogger("faust.tables.recovery")
recovery.info("generation id 2 app consumers id 2")
recovery.info("Restoring state from changelog topics...")
for i in range(300):
    recovery.warning("No event received for active tp since recovery start (started %d.%d minutes ago)", i // 60, i)
    recovery.warning("Recovery has not flushed buffers in the last 120.0 seconds (last flush was %d s ago)", i)
"""


def test_a_waiting_workers_report_keeps_the_story_its_repeated_warnings_would_push_out(tmp_path: Path) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-c", WAITING_WORKER], stdout=log_file, stderr=subprocess.STDOUT)
    process.wait(timeout=60)
    worker = WorkerProcess(process, log_path, web_port=0)
    assert "Restoring state" not in worker.log_tail(), "the tail alone is the repeated warnings"
    report = worker.wait_report()
    assert "598 records that repeat an earlier one left out" in report
    story = report.split("the end of its log:")[0]
    assert "generation id 2" in story and "Restoring state from changelog topics" in story
    assert story.count("No event received") == 1
    assert "started 4.299 minutes ago" in report.split("the end of its log:")[1], "and the end of the log follows"
