"""Shared fixtures. The broker is real Apache Kafka, started once per session on a free port of
127.0.0.1 (or taken from ``PATENTMATCH_KAFKA_BOOTSTRAP``). If it cannot start, every test that needs it
fails with the reason: nothing here skips."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from streams.localkafka import LocalKafka
from streams.settings import Settings
from streams.supervision import Deployment

_broker_lines: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which Kafka the integration tests talked to (the fixture's own output is captured)."""
    for line in _broker_lines:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    settings = Settings()
    if settings.kafka_bootstrap:
        _broker_lines.append(f"integration tests used the configured Kafka cluster at {settings.kafka_bootstrap}")
        yield settings.kafka_bootstrap
        return
    broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir)
    broker.start()  # raises BrokerStartError with the broker's own output: the tests fail, loudly
    _broker_lines.append(
        f"integration tests ran against Apache Kafka {broker.broker_version} (KRaft, single node) "
        f"on {broker.bootstrap}, started in {broker.startup_seconds:.1f}s"
    )
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix that gives each test its own topics on the shared broker."""
    return f"it-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def deployment(kafka_bootstrap: str) -> Iterator[Deployment]:
    """An app with its own topics on the session's broker; its workers are stopped afterwards."""
    dep = Deployment(kafka_bootstrap)
    try:
        yield dep
    finally:
        dep.stop_all()


@pytest.fixture
def own_broker() -> Iterator[LocalKafka]:
    """A broker of the test's own, for the scenarios that stop it: the session's broker stays up."""
    settings = Settings()
    broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
