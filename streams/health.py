"""The worker's operational pages on its web port: ``/health``, ``/ready`` and ``/metrics``.

``/health`` answers while the process and its event loop are alive. ``/ready`` answers 200 only when
the brokers answer, the worker is recovered (faust's table recovery done and every assigned shard
rebuilt), has partitions assigned, and is not in a rebalance; otherwise 503 with the reasons in the body.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import faust
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.kafka_io import client_options
from streams.metrics import ServiceMetrics
from streams.settings import KafkaSecurity
from streams.sharding import ShardStage
from streams.tables import RecoveryWatch

__all__ = ["BrokerProbe", "Progress", "consumer_lags", "not_ready_because", "register_pages"]


class BrokerProbe:
    """Whether the brokers answer a metadata request, asked on a timer (:meth:`check`).

    faust's own clients retry quietly through a broker outage and carry on when it ends, so nothing
    in their state says "the broker is gone"; a worker that cannot reach Kafka is not ready all the
    same. Each check uses a fresh client, so it never holds a connection the outage broke. Until the
    first check has answered, the brokers count as unreachable: readiness never runs ahead of it.
    """

    def __init__(self, bootstrap: str, security: KafkaSecurity, *, timeout_s: float = 3.0) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.timeout_s = timeout_s
        self.checked = False
        self.failing_since: float | None = None
        self.error = ""

    async def check(self) -> bool:
        client = AIOKafkaClient(
            bootstrap_servers=self.bootstrap,
            request_timeout_ms=int(self.timeout_s * 1000),
            **client_options(self.security),
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                await client.bootstrap()
                await client.fetch_all_metadata()
        except (KafkaError, OSError, TimeoutError) as exc:
            if self.failing_since is None:
                self.failing_since = time.monotonic()
            self.error = type(exc).__name__
            return False
        finally:
            self.checked = True
            await client.close()
        self.failing_since, self.error = None, ""
        return True

    def reason(self) -> str | None:
        """Why the brokers count as unreachable, or None while they answer."""
        if not self.checked:
            return "the brokers have not been probed yet"
        if self.failing_since is None:
            return None
        return f"the brokers do not answer ({self.error}, for {time.monotonic() - self.failing_since:.0f}s)"


# Prometheus' text format; aiohttp refuses a charset inside content_type (it is utf-8 either way).
EXPOSITION_TYPE = "text/plain; version=0.0.4"

Progress = dict[tuple[str, int], int]
"""The next offset to process, per (topic, partition), as the agents advance."""


def not_ready_because(
    app: faust.App,
    probe: BrokerProbe,
    recovery: RecoveryWatch,
    shards: ShardStage,
    shard_log: str,
    sources: Collection[str],
) -> list[str]:
    """Why the worker is not ready; empty when it is. The tables count as recovered when faust says so
    and :class:`RecoveryWatch` agrees: faust's flags alone are set by the tail of a recovery cut short,
    in the middle of the next rebalance."""
    unreachable = probe.reason()
    reasons = [unreachable] if unreachable else []
    if not recovery.recovered() or not app.tables.recovery.completed.is_set() or app.in_recovery:
        reasons.append("table recovery is not complete")
    if app.rebalancing:
        reasons.append("the consumer group is rebalancing")
    try:
        assigned = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
    except Exception:  # the consumer is not started yet: nothing to read
        assigned = set()
    if not any(topic in sources for topic, _ in assigned):
        reasons.append("no source partitions assigned")
    unbuilt = sorted(p for topic, p in assigned if topic == shard_log and not shards.is_built(p))
    if unbuilt and not reasons:
        reasons.append(f"shards not rebuilt yet: {unbuilt}")
    return reasons


async def consumer_lags(app: faust.App, sources: Collection[str], progress: Progress) -> dict[tuple[str, int], int]:
    """Records behind the end of each source partition this worker holds."""
    tps = [tp for tp in app.consumer.assignment() if tp.topic in sources]
    if not tps:
        return {}
    highwaters = await app.consumer.highwaters(*tps)
    lags = {}
    for tp in tps:
        position = progress.get((tp.topic, tp.partition))
        if position is None:
            position = await app.consumer.position(tp)
        if position is not None and tp in highwaters:
            lags[(tp.topic, tp.partition)] = max(0, highwaters[tp] - position)
    return lags


def register_pages(
    app: faust.App,
    metrics: ServiceMetrics,
    reasons: Callable[[], list[str]],
    lags: Callable[[], Awaitable[dict[tuple[str, int], int]]],
) -> None:
    @app.page("/health")
    async def health(view: Any, request: Any) -> Any:
        return view.json({"status": "alive"})

    @app.page("/ready")
    async def ready(view: Any, request: Any) -> Any:
        why = reasons()
        metrics.ready.set(0 if why else 1)
        return view.json({"ready": not why, "reasons": why}, status=503 if why else 200)

    @app.page("/metrics")
    async def scrape(view: Any, request: Any) -> Any:
        why = reasons()
        metrics.ready.set(0 if why else 1)
        if not why:
            metrics.set_lag(await lags())
        return view.bytes(metrics.exposition(), content_type=EXPOSITION_TYPE)
