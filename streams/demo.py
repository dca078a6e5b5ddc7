"""``make demo``: a real broker, the matching service, a replay of a generated market and a live view.

1. start a local Apache Kafka (unless ``PATENTMATCH_KAFKA_BOOTSTRAP`` names one);
2. start a worker (``patentmatch worker``) as a separate process;
3. publish the example events and a generated market, with a progress bar;
4. print match notifications as they arrive, then a summary: matches by kind, dead letters, and whether
   the open matches equal the brute-force oracle on the final book.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterator

import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from matcher.market import Market, to_event
from matcher.oracle import oracle_matches
from schemas import Rejection
from streams.audit import audit
from streams.examples import decode_example, example_events
from streams.kafka_io import ensure_topics
from streams.localkafka import LocalKafka
from streams.replay import publish_log, read_topic, record_of
from streams.service import public_topics
from streams.settings import Settings
from streams.supervision import Deployment
from streams.tail import follow_matches

__all__ = ["bootstrap_servers", "run_demo"]

SHOWN_LIVE = 25


@contextlib.contextmanager
def bootstrap_servers(settings: Settings, console: Console) -> Iterator[str]:
    """The configured cluster, or a local broker started for the duration of the block."""
    if settings.kafka_bootstrap:
        yield settings.kafka_bootstrap
        return
    with console.status("starting a local Apache Kafka broker…"):
        broker = LocalKafka(version=settings.kafka_version, cache_dir=settings.cache_dir).start()
    console.print(f"Apache Kafka {broker.broker_version} on {broker.bootstrap} (up in {broker.startup_seconds:.1f}s)")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


async def run_demo(settings: Settings, console: Console, *, market_size: int = 1500) -> None:
    documents = [orjson.loads(e.raw) for e in example_events() if not isinstance(decode_example(e), Rejection)]
    documents += Market(2026).lifecycle(market_size)
    with bootstrap_servers(settings, console) as bootstrap:
        deployment = Deployment(  # one worker: one shard, which announces its matches directly
            bootstrap,
            shards=1,
            name=f"patentmatch-demo-{int(time.time())}",
            topic_names=settings.topics,
            keep_files=True,
        )
        await ensure_topics(bootstrap, public_topics(deployment.settings))
        worker = deployment.start_worker()
        console.print(f"worker started (pid {worker.process.pid}, log {worker.log_path})")
        try:
            await _replay_and_watch(deployment, documents, console)
        finally:
            deployment.stop_all()


async def _replay_and_watch(deployment: Deployment, documents: list[dict[str, object]], console: Console) -> None:
    topics = deployment.topics
    records = [record_of(d, topics) for d in documents]
    console.rule(f"the first {SHOWN_LIVE} notifications, live")
    watcher = asyncio.create_task(
        follow_matches(deployment.bootstrap, topics.matches, console, from_beginning=True,
                       stop=lambda count: count >= SHOWN_LIVE)
    )  # fmt: skip
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("replaying the market", total=len(records))
        await publish_log(
            deployment.bootstrap, deployment.settings, records, rate_per_s=400,
            on_sent=lambda n: progress.advance(task, n),
        )  # fmt: skip
    await watcher
    console.rule(f"replayed {len(records)} events; waiting for the service to settle")
    oracle = oracle_matches([to_event(d) for d in documents])
    result = None
    for _ in range(240):
        result = audit(await read_topic(deployment.bootstrap, topics.matches), oracle)
        if result.equal:
            break
        await asyncio.sleep(0.5)
    events = await read_topic(deployment.bootstrap, topics.matches)
    letters = await read_topic(deployment.bootstrap, topics.deadletter)
    summary = Table(title="patentmatch demo")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    for (kind, type_), count in sorted(Counter((e["kind"], e["type"]) for e in events).items()):
        summary.add_row(f"{type_} · {kind}", str(count))
    summary.add_row("dead letters", str(len(letters)))
    summary.add_row("open matches (oracle)", str(len(oracle)))
    if result is not None:
        verdict = "yes" if result.equal else f"no: missing {result.missing}, extra {result.extra}"
        summary.add_row("open matches equal the oracle", verdict)
    console.print(summary)
