"""What operators see, on the real broker: /metrics counts what the worker did, /ready waits for recovery."""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections import Counter

from matcher import Engine
from matcher.market import Market
from schemas import BuyerDemand, PatentOffer
from streams.harness import (
    eventually,
    health_until_ready,
    http_get,
    market_events,
    market_records,
    matches,
    metric_total,
    prepare,
    publish,
    readiness,
    scrape_metrics,
    settle_on_oracle,
)
from streams.supervision import Deployment, WorkerProcess


async def ready(worker: WorkerProcess) -> bool:
    return (await readiness(worker))[0] == 200


async def test_metrics_count_what_the_worker_did_and_ready_waits_for_recovery(deployment: Deployment) -> None:
    await prepare(deployment)
    worker = deployment.start_worker()
    await eventually(lambda: ready(worker), timeout_s=120, dep=deployment)
    assert metric_total(await scrape_metrics(worker), "patentmatch_broker_up") == 1, (
        "ready, so the brokers have answered"
    )
    documents = Market(5).lifecycle(300, expiring=0.1)
    events = market_events(documents)
    t = deployment.topics
    bad = (t.offers, b"broken", b'{"offer_id": "o-broken", "patents": [')
    await publish(deployment, [*await market_records(deployment, documents), bad])
    await settle_on_oracle(deployment, events, timeout_s=180)

    engine = Engine()
    outcomes: Counter[tuple[str, str]] = Counter()
    for event in events:
        topic = {PatentOffer: t.offers, BuyerDemand: t.demands}.get(type(event), t.financing)
        outcomes[(topic, engine.apply(event).outcome)] += 1
    applied = len(events) * deployment.shards

    async def every_event_applied() -> bool:
        return metric_total(await scrape_metrics(worker), "patentmatch_engine_seconds_count") == applied

    await eventually(every_event_applied, timeout_s=60, dep=deployment)
    samples = await scrape_metrics(worker)
    emitted = await matches(deployment)

    for (topic, outcome), count in outcomes.items():
        assert metric_total(samples, "patentmatch_events_total", topic=topic, outcome=outcome) == count, (
            topic,
            outcome,
        )
    assert metric_total(samples, "patentmatch_events_total", topic=t.offers, outcome="dead_lettered") == 1
    assert (
        metric_total(samples, "patentmatch_dead_letters_total")
        == metric_total(samples, "patentmatch_dead_letters_total", error_kind="decode")
        == 1
    )
    for kind, count in Counter(e["kind"] for e in emitted if e["type"] == "match").items():
        assert metric_total(samples, "patentmatch_matches_total", kind=kind) == count
    for (kind, reason), count in Counter((e["kind"], e["reason"]) for e in emitted if e["type"] == "revoke").items():
        assert metric_total(samples, "patentmatch_revocations_total", kind=kind, reason=reason) == count
    assert metric_total(samples, "patentmatch_event_to_match_seconds_count") == len(emitted)
    assert metric_total(samples, "patentmatch_record_age_seconds_count", stage="validate") == len(events) + 1
    assert metric_total(samples, "patentmatch_record_age_seconds_count", stage="shard") == applied
    assert metric_total(samples, "patentmatch_record_age_seconds_count", stage="merge") > 0
    assert metric_total(samples, "patentmatch_record_age_seconds_sum") > 0
    assert metric_total(samples, "patentmatch_trigger_candidates_count") == applied
    assert metric_total(samples, "patentmatch_trigger_candidates_sum") > 0
    sizes = engine.sizes()
    assert metric_total(samples, "patentmatch_book_entries", side="offers") == sizes["offers"]
    assert metric_total(samples, "patentmatch_book_entries", shard="0", side="buyer_demands") == sizes["buyer_demands"]
    assert metric_total(samples, "patentmatch_rebuild_seconds_count", stage="shard") == deployment.shards
    assert metric_total(samples, "patentmatch_rebuild_seconds_count", stage="merger") == deployment.merge_partitions
    assert metric_total(samples, "patentmatch_consumer_lag") == 0
    assert metric_total(samples, "patentmatch_gc_pause_seconds_count", generation="0") > 0, "collections are timed"
    assert metric_total(samples, "process_cpu_seconds_total") > 0
    assert metric_total(samples, "process_resident_memory_bytes") > 50 << 20
    assert {ls for (n, ls) in samples if n == "patentmatch_consumer_lag"}, "lag is reported per partition"
    assert metric_total(samples, "patentmatch_ready") == 1

    # A restarted worker answers /health at once, but /ready only once the book is recovered.
    worker.stop()
    restarted = deployment.start_worker()
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, body = await asyncio.to_thread(http_get, restarted, "/ready")
        except (ConnectionError, urllib.error.URLError):
            await asyncio.sleep(0.1)
            continue
        seen.append((status, body))
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert seen and seen[-1][0] == 200, seen[-3:]
    assert seen[0][0] == 503 and '"reasons":["' in seen[0][1].replace(" ", ""), seen[0]
    assert (await asyncio.to_thread(http_get, restarted, "/health"))[0] == 200
    recovered = await scrape_metrics(restarted)
    assert metric_total(recovered, "patentmatch_rebuild_seconds_count", stage="shard") == deployment.shards
    assert metric_total(recovered, "patentmatch_book_entries", side="offers") == sizes["offers"]


async def test_a_deployment_leaves_no_files_behind(kafka_bootstrap: str) -> None:
    """Every integration test starts workers: their logs and faust data go when they are stopped."""
    dep = Deployment(kafka_bootstrap)
    try:
        await prepare(dep)
        worker = dep.start_worker()
        await eventually(lambda: ready(worker), timeout_s=120, dep=dep)
        assert "Starting" in worker.log_path.read_text(errors="replace")
        assert (dep.workdir / "data" / dep.name).is_dir(), "faust keeps its data in the deployment's folder"
        workdir = dep.workdir
    finally:
        dep.stop_all()
    assert not workdir.exists()


async def test_a_worker_answers_health_while_it_rebuilds_its_shards(deployment: Deployment) -> None:
    """A restarted worker rebuilds each shard from its table: seconds per ten thousand listings, minutes
    at a large book. Its event loop must keep turning meanwhile, or ``/health`` goes unanswered and an
    orchestrator kills a worker that is only busy (before the rebuild gave way, /health was silent for
    22.5 s at a 15k-listing book)."""
    await prepare(deployment)
    worker = deployment.start_worker()
    await eventually(lambda: ready(worker), timeout_s=120, dep=deployment)
    documents = Market(7).listings(6000)
    await publish(deployment, await market_records(deployment, documents))

    async def every_event_applied() -> bool:
        applied = metric_total(await scrape_metrics(worker), "patentmatch_engine_seconds_count")
        return applied == len(documents) * deployment.shards

    await eventually(every_event_applied, timeout_s=300, dep=deployment)
    worker.stop()
    restarted = deployment.start_worker()

    _, longest_silence = await health_until_ready(restarted, timeout_s=180)
    rebuild_s = metric_total(await scrape_metrics(restarted), "patentmatch_rebuild_seconds_sum", stage="shard")
    assert rebuild_s > 2.0, "the book must take a while to rebuild, or this test shows nothing"
    assert longest_silence < 1.5, (longest_silence, rebuild_s)
