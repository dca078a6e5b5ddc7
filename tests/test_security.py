"""SASL/SCRAM and ACLs on a real broker (issue 6, scenario 7): the worker matches with its own
credentials and the ACLs it was given; a client without credentials, with a wrong password, or with
valid credentials but no ACL is refused; the secret never shows in logs, pages or errors."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from matcher.market import Market
from streams.harness import http_get, market_events, market_records, prepare, publish, settle_on_oracle
from streams.kafka_io import read_records
from streams.localkafka import LocalKafka
from streams.settings import PLAINTEXT, KafkaSecurity, Settings
from streams.supervision import Deployment

PASSWORDS = {name: secrets.token_urlsafe(18) for name in ("admin", "matcher", "stranger")}


def sasl(user: str, password: str | None = None) -> KafkaSecurity:
    return KafkaSecurity(protocol="SASL_PLAINTEXT", username=user, password=password or PASSWORDS[user])


@pytest.fixture(scope="module")
def scram_broker() -> Iterator[LocalKafka]:
    settings = Settings()
    broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir, scram_users=PASSWORDS)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_the_worker_matches_with_its_credentials_and_others_are_refused(scram_broker: LocalKafka) -> None:
    dep = Deployment(scram_broker.bootstrap, security=sasl("matcher"))
    # The matcher may use its own topics and consumer group, nothing else.
    scram_broker.allow("User:matcher", operations=["All"], topic_prefix=dep.name, group_prefix=dep.name)
    try:
        await prepare(dep)
        worker = dep.start_worker()
        documents = Market(53).lifecycle(300, expiring=0.1)
        await publish(dep, await market_records(dep, documents))
        result = await settle_on_oracle(dep, market_events(documents), timeout_s=180)
        assert result.equal and result.events > 0

        refusals = {
            "no credentials": (PLAINTEXT, KafkaConnectionError),
            "a wrong password": (sasl("matcher", "not-" + PASSWORDS["matcher"]), KafkaConnectionError),
            "credentials but no ACL": (sasl("stranger"), TopicAuthorizationFailedError),
        }
        for what, (security, error) in refusals.items():
            with pytest.raises(error):
                await read_records(scram_broker.bootstrap, dep.topics.matches, count=1, timeout_s=10, security=security)
            print(f"refused, {what}: {error.__name__}")

        pages = [await asyncio.to_thread(http_get, worker, page) for page in ("/health", "/ready", "/metrics")]
        worker.stop()
        said = worker.log_path.read_text(errors="replace") + "".join(body for _, body in pages)
        assert PASSWORDS["matcher"] not in said
        assert PASSWORDS["matcher"] not in repr(dep.settings) + str(dep.settings.model_dump())
    finally:
        dep.stop_all()


async def test_a_worker_with_a_wrong_password_fails_without_showing_it(scram_broker: LocalKafka) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(12)
    with Deployment(scram_broker.bootstrap, security=sasl("matcher", wrong)) as dep:
        worker = dep.start_worker()
        exit_code = await asyncio.to_thread(worker.process.wait, 120)
        log = worker.log_path.read_text(errors="replace")
    assert exit_code != 0
    assert "cannot set up its topics" in log and "as matcher (SASL_PLAINTEXT)" in log, log[-2000:]
    assert "Authentication failed" in log, "aiokafka's own line says why"
    assert wrong not in log
