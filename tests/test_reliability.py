"""Faults while events flow, short forms (issue 6, scenarios 2 to 4): the fold of ``patent.matches``
must equal the oracle afterwards, and the duplicates stay exact repeats of what was already said."""

from __future__ import annotations

import asyncio
import random
import signal

from matcher.market import Market
from streams.harness import (
    MatchStream,
    eventually,
    market_events,
    market_records,
    prepare,
    publish,
    readiness,
    settle_on_oracle,
    until_applied,
    until_assigned,
)
from streams.localkafka import LocalKafka
from streams.supervision import Deployment

# A killed worker's partitions move after the session timeout: shorter than the default 60 s here.
FAST_FAILOVER = {"PATENTMATCH_SESSION_TIMEOUT_S": "10"}


async def wait_for_output(dep: Deployment, at_least: int) -> None:
    async with MatchStream(dep) as output:
        await output.reaches(at_least, timeout_s=180, dep=dep)


async def test_a_crash_loop_loses_nothing(kafka_bootstrap: str) -> None:
    dep = Deployment(kafka_bootstrap, extra_env=FAST_FAILOVER)
    try:
        await prepare(dep)
        worker = dep.start_worker()
        documents = Market(41).lifecycle(2000, expiring=0.1)
        replay = asyncio.create_task(publish(dep, await market_records(dep, documents), rate_per_s=300))
        rng = random.Random(41)
        async with MatchStream(dep) as output:
            # Each kill once the worker has emitted a random number more events, or has been quiet for
            # longer than a restart takes (it had no more to say: on a busy machine it says less).
            for _ in range(3):
                await output.grows(rng.randint(200, 3000), timeout_s=180, dep=dep, unless_quiet_for_s=60)
                worker.stop(signal.SIGKILL)
                worker = dep.start_worker()
        await replay
        result = await settle_on_oracle(dep, market_events(documents), timeout_s=300)
        assert result.missing == result.extra == result.changed == 0
    finally:
        dep.stop_all()


async def test_a_worker_joining_and_leaving_under_load_loses_nothing(deployment: Deployment) -> None:
    """The second worker must really take a share (apply events in a shard of its own) before it leaves,
    and events flow while it joins and while it leaves. Waiting for a count of match events instead let
    it leave before it had even logged a line on a quiet machine: only CI's busy one tested a leave."""
    await prepare(deployment)
    deployment.start_worker()
    documents = Market(43).lifecycle(3000, expiring=0.1)
    records = await market_records(deployment, documents)
    before_join, while_joining, while_leaving = records[:800], records[800:2000], records[2000:]
    await publish(deployment, before_join, rate_per_s=300)
    await wait_for_output(deployment, 200)
    second = deployment.start_worker()
    await publish(deployment, while_joining, rate_per_s=100)

    await until_applied(second, 1, timeout_s=180, dep=deployment)  # it took a share of the work
    replay = asyncio.create_task(publish(deployment, while_leaving, rate_per_s=300))
    await asyncio.sleep(1.0)
    second.stop(signal.SIGTERM)
    await replay
    result = await settle_on_oracle(deployment, market_events(documents), timeout_s=300)
    assert result.missing == result.extra == result.changed == 0


async def test_a_worker_leaving_while_the_group_recovers_from_its_join_loses_nothing(deployment: Deployment) -> None:
    """The second worker leaves as soon as it is assigned partitions: the first is then still reading
    its tables' changelogs for the join's assignment when the leave's assignment comes. faust completes
    that cut-short recovery all the same; shards built then, from a half-replayed table, stayed wrong
    (560 missing, 744 extra, before :class:`streams.tables.RecoveryWatch`)."""
    await prepare(deployment)
    deployment.start_worker()
    documents = Market(53).lifecycle(3000, expiring=0.1)
    records = await market_records(deployment, documents)
    backlog = len(records) * 2 // 3
    await publish(deployment, records[:backlog])
    await settle_on_oracle(deployment, market_events(documents)[:backlog], timeout_s=300)
    second = deployment.start_worker()
    await until_assigned(second, timeout_s=180)
    second.stop(signal.SIGTERM)
    await publish(deployment, records[backlog:], rate_per_s=300)
    result = await settle_on_oracle(deployment, market_events(documents), timeout_s=300)
    assert result.missing == result.extra == result.changed == 0


async def test_a_broker_restart_in_the_middle_of_a_replay_loses_nothing(own_broker: LocalKafka) -> None:
    dep = Deployment(own_broker.bootstrap)
    try:
        await prepare(dep)
        worker = dep.start_worker()
        documents = Market(47).lifecycle(2000, expiring=0.1)
        replay = asyncio.create_task(publish(dep, await market_records(dep, documents), rate_per_s=250))
        await wait_for_output(dep, 300)

        await asyncio.to_thread(own_broker.interrupt)
        seen: list[tuple[int, str]] = []

        async def not_ready_for_the_outage() -> bool:
            seen.append(await readiness(worker))
            return seen[-1][0] == 503 and "brokers do not answer" in seen[-1][1]

        await eventually(not_ready_for_the_outage, timeout_s=30, dep=dep)
        await asyncio.sleep(3)  # an outage of some seconds, not just a blink
        await asyncio.to_thread(own_broker.resume)

        async def ready_again() -> bool:
            return (await readiness(worker))[0] == 200

        await eventually(ready_again, timeout_s=120, dep=dep)
        await replay
        result = await settle_on_oracle(dep, market_events(documents), timeout_s=300)
        assert result.missing == result.extra == result.changed == 0
        assert not worker.died and worker.process.poll() is None, "the worker reconnected by itself"
        retries = worker.log_path.read_text(errors="replace").count("Unable connect to node")
        assert retries <= 10, f"{retries} lines of aiokafka retries: the outage flooded the log"
    finally:
        dep.stop_all()
