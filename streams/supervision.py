"""Running workers as separate processes on a broker: for the integration tests and the benchmarks,
which need to stop them with SIGTERM or SIGKILL like an operator (or a crash) would."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streams.localkafka import free_port
from streams.settings import PLAINTEXT, KafkaSecurity, Settings, Topics

__all__ = ["Deployment", "WorkerProcess"]


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    web_port: int
    stopped: bool = False
    """Stopped on purpose (by :meth:`stop`), as opposed to died."""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Send ``sig`` and wait for the process to end (SIGKILL if it will not); returns its exit code."""
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    @property
    def died(self) -> bool:
        """Ended without being asked to."""
        return not self.stopped and self.process.poll() is not None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_report(self, chars: int = 8000) -> str:
        """Where a live worker got to: its log with every record that repeats an earlier one (digits
        aside) left out, then the log's tail. A worker that waits logs the same warnings every few
        seconds, and the tail alone shows only those (CI, 5 December: 4 KB of one recovery warning,
        and not a word of the rebalance that led to it)."""
        text = self.log_path.read_text(errors="replace")
        seen: set[str] = set()
        story: list[str] = []
        lines = text.splitlines()
        for line in lines:
            template = _DIGITS.sub("#", line)
            if template not in seen:
                seen.add(template)
                story.append(line)
        told = "\n".join(story)[-chars // 2 :]
        return (
            f"its log, {len(lines) - len(story)} records that repeat an earlier one left out:\n{told}\n"
            f"the end of its log:\n{text[-chars // 2 :]}"
        )

    def death_report(self, chars: int = 8000) -> str:
        """Why the worker ended: its exit code, its log's errors (records at ERROR or above, and whatever
        it wrote that is not a log record, such as a traceback), then the log's tail. The tail alone
        shows faust's shutdown, which buries the exception that caused it (CI, 4 December)."""
        text = self.log_path.read_text(errors="replace")
        errors = "\n".join(line for line in text.splitlines() if _is_error_line(line))
        return (
            f"pid {self.process.pid} exited with {self.process.returncode}\n"
            f"errors in its log:\n{errors[: chars // 2] or '(none)'}\n"
            f"the end of its log:\n{text[-chars // 2 :]}"
        )


_DIGITS = re.compile(r"\d+")


def _is_error_line(line: str) -> bool:
    if not line.startswith("{"):
        return bool(line.strip())
    return '"level": "ERROR"' in line or '"level": "CRITICAL"' in line


@dataclass
class Deployment:
    """One app (consumer group) with its own topics on a shared broker."""

    bootstrap: str
    shards: int = 2
    merge_partitions: int = 4
    name: str = field(default_factory=lambda: f"pm-{uuid.uuid4().hex[:10]}")
    extra_env: dict[str, str] = field(default_factory=dict)
    security: KafkaSecurity = PLAINTEXT
    topic_names: Topics | None = None
    """Topic names; by default every topic is named after the deployment, so that runs on one broker
    never meet."""
    keep_files: bool = False
    """Keep the workers' logs and data after :meth:`stop_all` (the demo prints where its log is)."""
    workers: list[WorkerProcess] = field(default_factory=list)
    _workdir: Path | None = field(default=None, init=False, repr=False)

    @property
    def workdir(self) -> Path:
        """The workers' logs and faust data, removed by :meth:`stop_all`: a test run leaves nothing in
        the temporary folder (it left ~100 files per ``make test``)."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        return self._workdir

    @property
    def topics(self) -> Topics:
        if self.topic_names is not None:
            return self.topic_names
        n = self.name
        return Topics(
            offers=f"{n}.offers", demands=f"{n}.demands", financing=f"{n}.financing", matches=f"{n}.matches",
            deadletter=f"{n}.deadletter", shard_log=f"{n}.shard-log", answers=f"{n}.answers",
        )  # fmt: skip

    @property
    def settings(self) -> Settings:
        return Settings(
            kafka_bootstrap=self.bootstrap,
            app_id=self.name,
            shards=self.shards,
            merge_partitions=self.merge_partitions,
            topics=self.topics,
            security=self.security,
        )

    def env(self, web_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATENTMATCH_")}
        env.update(
            PATENTMATCH_KAFKA_BOOTSTRAP=self.bootstrap,
            PATENTMATCH_APP_ID=self.name,
            PATENTMATCH_SHARDS=str(self.shards),
            PATENTMATCH_MERGE_PARTITIONS=str(self.merge_partitions),
            PATENTMATCH_TOPICS=self.topics.model_dump_json(),
            PATENTMATCH_WEB_PORT=str(web_port),
            PATENTMATCH_DATA_DIR=str(self.workdir / "data"),
            PATENTMATCH_SECURITY__PROTOCOL=self.security.protocol,
            PATENTMATCH_SECURITY__SASL_MECHANISM=self.security.sasl_mechanism,
        )
        if self.security.username is not None and self.security.password is not None:
            env["PATENTMATCH_SECURITY__USERNAME"] = self.security.username
            env["PATENTMATCH_SECURITY__PASSWORD"] = self.security.password.get_secret_value()
        if self.security.ssl_cafile is not None:
            env["PATENTMATCH_SECURITY__SSL_CAFILE"] = str(self.security.ssl_cafile)
        env.update(self.extra_env)
        return env

    def start_worker(self) -> WorkerProcess:
        port = free_port()
        log_path = Path(tempfile.mkstemp(prefix="worker-", suffix=".log", dir=self.workdir)[1])
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                env=self.env(port),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(process, log_path, port)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        """Stop every worker, then remove their files (read a worker's log before this)."""
        for worker in self.workers:
            worker.stop()
        if self._workdir is not None and not self.keep_files:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()
