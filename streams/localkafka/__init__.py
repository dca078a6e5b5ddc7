"""A real, single-node Apache Kafka (KRaft) on 127.0.0.1, without Docker.

The broker jars are resolved from Maven Central by Maven (``pom.xml`` beside this file) into a cache
folder that is reused when present; storage is formatted in a temporary folder; the combined
broker+controller listens on free ports and is stopped (SIGTERM, then SIGKILL) on exit. Needs Java 17+
and Maven on the PATH.

With ``scram_users`` the client listener takes SASL/SCRAM-SHA-512 only, the users' credentials are
written into the storage at format time, and Kafka's ``StandardAuthorizer`` refuses whatever no ACL
allows (:meth:`LocalKafka.allow` adds ACLs with Kafka's own ``kafka-acls`` tool). The first user is
the broker's super user; the controller listener stays plain text on 127.0.0.1.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = ["BrokerStartError", "LocalKafka", "ensure_kafka_jars", "free_port"]

log = logging.getLogger(__name__)

_POM = Path(__file__).with_name("pom.xml")
_READY_LINE = re.compile(r"Kafka Server started")
_SCRAM = "SCRAM-SHA-512"
_VERSION_LINE = re.compile(r"Kafka version: (\S+)")


class BrokerStartError(RuntimeError):
    """The local broker could not be provisioned or did not come up; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_kafka_jars(version: str, cache_dir: Path) -> Path:
    """The folder of broker jars for ``version``, resolved with Maven on first use.

    A marker file is written last, so an interrupted download is retried rather than half-used. The
    folder is named after the pom's content too, so a changed set of jars is resolved anew.
    """
    pom_digest = hashlib.sha256(_POM.read_bytes()).hexdigest()[:10]
    lib = cache_dir / f"kafka-{version}-{pom_digest}" / "lib"
    marker = lib / ".complete"
    if marker.exists():
        return lib
    if shutil.which("mvn") is None:
        raise BrokerStartError("Maven (mvn) is not on the PATH: it is needed once to fetch the Kafka jars")
    staging = lib.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        "mvn", "-B", "-q", "-f", str(_POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    log.info("resolving Apache Kafka %s from Maven Central into %s", version, lib)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerStartError(f"mvn failed to resolve kafka_2.13:{version}:\n{result.stdout[-3000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    marker.write_text(version)
    return lib


_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
"""


@dataclass
class LocalKafka:
    """One broker process. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    ``extra_properties`` are appended to ``server.properties`` (for tuning); ``scram_users`` (name →
    password) turns on SCRAM authentication and ACLs.
    """

    version: str
    cache_dir: Path
    port: int = 0
    extra_properties: dict[str, str] = field(default_factory=dict)
    scram_users: dict[str, str] = field(default_factory=dict)
    heap: str = "768m"
    start_timeout_s: float = 90.0
    workdir: Path | None = None
    broker_version: str | None = None
    startup_seconds: float | None = None
    _process: subprocess.Popen[bytes] | None = None
    _stdout: IO[bytes] | None = None
    _command: list[str] = field(default_factory=list)
    _lib: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "server.log"

    def _write_config(self, lib: Path) -> Path:
        assert self.workdir is not None
        controller_port = free_port()
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            # Upstream platforms may send oversized records: the broker takes them (up to 10 MiB) so that
            # the service can dead-letter them with a reason instead of the producer failing blindly.
            "message.max.bytes": str(10 * 1024 * 1024),
        }
        if self.scram_users:
            properties.update(self._scram_properties(controller_port))
        properties.update(self.extra_properties)
        config = self.workdir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        (self.workdir / "log4j2.properties").write_text(_LOG4J2.format(log_file=self.log_file))
        return config

    def _scram_properties(self, controller_port: int) -> dict[str, str]:
        admin, password = next(iter(self.scram_users.items()))
        return {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": _SCRAM,
            "sasl.mechanism.inter.broker.protocol": _SCRAM,
            f"listener.name.sasl_plaintext.{_SCRAM.lower()}.sasl.jaas.config": _scram_login(admin, password),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # The controller listener is plain text (its principal is ANONYMOUS) and bound to loopback.
            "super.users": f"User:{admin};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }

    def allow(self, principal: str, *, operations: list[str], topic_prefix: str | None = None,
              group_prefix: str | None = None) -> None:  # fmt: skip
        """Add ACLs with ``kafka-acls`` as the super user: ``principal`` (``User:name``) may do
        ``operations`` on the topics and/or consumer groups whose names start with the prefixes."""
        assert self._lib is not None and self.workdir is not None and self.scram_users, "start() with scram_users"
        admin, password = next(iter(self.scram_users.items()))
        client_config = self.workdir / "admin.properties"
        login = _scram_login(admin, password)
        client_config.write_text(
            f"security.protocol=SASL_PLAINTEXT\nsasl.mechanism={_SCRAM}\nsasl.jaas.config={login}\n"
        )
        resources: list[str] = []
        if topic_prefix is not None:
            resources += ["--topic", topic_prefix]
        if group_prefix is not None:
            resources += ["--group", group_prefix]
        command = self._java(
            self._lib, "org.apache.kafka.tools.AclCommand", "--bootstrap-server", self.bootstrap,
            "--command-config", str(client_config), "--add", "--allow-principal", principal,
            *[arg for op in operations for arg in ("--operation", op)],
            "--resource-pattern-type", "prefixed", *resources,
        )  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerStartError(f"kafka-acls failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    def _java(self, lib: Path, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            f"-Dlog4j2.configurationFile={self.workdir}/log4j2.properties",
            "-cp",
            f"{lib}/*",
            *args,
        ]

    def start(self) -> LocalKafka:
        """Provision, format and start the broker; returns once it accepts clients."""
        if shutil.which("java") is None:
            raise BrokerStartError("java is not on the PATH: the local broker needs Java 17+")
        began = time.monotonic()
        lib = ensure_kafka_jars(self.version, self.cache_dir)
        self.port = self.port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="patentmatch-kafka-"))
        self._lib = lib
        config = self._write_config(lib)
        cluster_id = f"--cluster-id={_kraft_id(str(uuid.uuid4()))}"
        scram = [f"--add-scram={_SCRAM}=[name={name},password={pw}]" for name, pw in self.scram_users.items()]
        fmt = subprocess.run(
            self._java(lib, "kafka.tools.StorageTool", "format", cluster_id, *scram, "-c", str(config)),
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise BrokerStartError(f"formatting KRaft storage failed:\n{fmt.stdout}\n{fmt.stderr}")
        self._stdout = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - closed in stop()
        self._command = self._java(lib, "kafka.Kafka", str(config))
        self._launch()
        atexit.register(self.stop)
        self._wait_until_ready()
        self.startup_seconds = time.monotonic() - began
        log.info("Apache Kafka %s up on %s in %.1fs", self.broker_version, self.bootstrap, self.startup_seconds)
        return self

    def _launch(self) -> None:
        self._process = subprocess.Popen(
            self._command, stdout=self._stdout, stderr=subprocess.STDOUT, start_new_session=True
        )

    def interrupt(self) -> None:
        """Stop the broker process but keep its storage and port: the start of an outage, for the
        reliability tests. :meth:`resume` ends it."""
        assert self._process is not None, "start() the broker first"
        self._terminate(self._process)

    def resume(self) -> None:
        """Start the interrupted broker again on the same port and storage; returns once it accepts
        clients."""
        self._launch()
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0  # a restart appends
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerStartError(f"the broker exited with {self._process.returncode}:\n{self._tail()}")
            text = self.log_file.read_text(errors="replace")[log_start:] if self.log_file.exists() else ""
            if _READY_LINE.search(text) and _port_open(self.port):
                found = _VERSION_LINE.search(text)
                self.broker_version = found.group(1) if found else "unknown"
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerStartError(f"the broker did not start within {self.start_timeout_s}s:\n{self._tail()}")

    def _tail(self) -> str:
        assert self.workdir is not None
        chunks = []
        for name in ("stdout.log", "server.log"):
            path = self.workdir / name
            if path.exists():
                chunks.append(path.read_text(errors="replace")[-3000:])
        return "\n".join(chunks)

    def stop(self, *, timeout_s: float = 30.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and delete its storage. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None:
            self._terminate(process, timeout_s)
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
        """SIGTERM the broker's process group, SIGKILL it after ``timeout_s``."""
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _scram_login(user: str, password: str) -> str:
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{password}";'


def _kraft_id(cluster_uuid: str) -> str:
    """KRaft wants a base64url-encoded 16-byte id (what ``kafka-storage random-uuid`` prints). One id in
    64 starts with ``-``: pass it as ``--cluster-id=<id>``, never as a separate argument."""
    return base64.urlsafe_b64encode(uuid.UUID(cluster_uuid).bytes).decode().rstrip("=")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
