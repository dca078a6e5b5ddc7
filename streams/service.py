"""The service: three faust agents over real Kafka — validate → shard → merge (DESIGN.md, "Dataflow").

- ``validate`` reads the public input topics; bad records go to ``patent.deadletter``, valid events to
  every partition of the shard log.
- ``shard`` runs one engine per shard-log partition (:mod:`streams.sharding`) and sends each changed
  local top K to the merger partition of its seeker.
- ``merge`` combines the shards' answers into each seeker's top K (:mod:`streams.merging`) and writes
  match and revoke events to ``patent.matches``, on the partition of the seeker.

With one shard (:attr:`Settings.direct`) the shard's answers go straight to a merger in the same
worker, which announces them: no answers topic, no answers table, no ``merge`` agent. The merger then
starts empty with each rebuild of the shard, reads what ``patent.matches`` holds and takes the shard's
resync, so a restart repairs what it missed as it does with a merge agent. And the worker that holds
the shard applies the valid events of its input partitions at once, without their copy on the shard
log: at a trickle each Kafka record costs faust and aiokafka several milliseconds of their own. The
shard log then carries only what a worker validates while the shard is not built in it (starting,
or held by another worker); the book's idempotence makes the order of the two paths immaterial, and
an input offset is committed only after the table writes of its event, as a shard-log offset is.

Every agent runs with ``concurrency=1`` (faust-streaming commits past in-flight events otherwise) and
at-least-once delivery; idempotence is ours (versions and event ids in the book, offset tags on
answers, the emitted state read back from the output topic). Sends, table writes included
(:mod:`streams.tables`), go through the producer without waiting for each acknowledgement; faust
flushes the producer before it commits an offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import faust
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from faust.auth import SASLCredentials, SSLCredentials

from matcher import MatchingConfig
from matcher.text import default_analyzer
from schemas import DeadLetter, InputEvent, encode
from streams.batching import Batch
from streams.gaps import GapGuard, seek_uncommitted_partitions_too
from streams.health import BrokerProbe, Progress, consumer_lags, not_ready_because, register_pages
from streams.intake import Source, route
from streams.kafka_io import Record, committed_offset, read_batches, read_range, send_batched, ssl_context
from streams.merging import EmittedFold, Merger
from streams.metrics import ServiceMetrics
from streams.settings import KafkaSecurity, Settings
from streams.sharding import Answer, ShardStage, bundle_answers, merge_partition, shard_of_key, split_bundle
from streams.tables import RecoveryWatch, WatchedTableManager, written_through_table

__all__ = ["build_app", "finish_in_steps", "internal_topics", "public_topics", "source_topics"]

T = TypeVar("T")

log = logging.getLogger("patentmatch.service")

REBUILD_POLL_S = 0.1
"""How often the worker looks for assigned shards to build: a tenth of a second against the seconds
a rebalance and a rebuild take."""
LET_GO_AFTER_S = 10.0
"""The longest the shard agent holds a record while its shard waits for the table's recovery. A
revocation that begins meanwhile makes it let go at once; this bounds the wait in any case not
foreseen, since faust's revocation waits for the record without a time limit."""


def public_topics(settings: Settings) -> dict[str, int]:
    """The public topics the service needs, with their partition counts."""
    t = settings.topics
    return {
        t.offers: settings.input_partitions,
        t.demands: settings.input_partitions,
        t.financing: settings.input_partitions,
        t.matches: settings.merge_partitions,
        t.deadletter: 1,
    }


def internal_topics(settings: Settings) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """The app's own topics with their partition counts, and the configs of the compacted ones.

    The worker creates them before faust starts: when faust creates them itself, its consumer may
    subscribe before the broker's metadata lists them, and the assignor then ignores the topic for
    good ("Ignoring missing topic") — measured here as a worker that never received a shard."""
    t, app_id = settings.topics, settings.app_id
    changelogs = {f"{app_id}-book-changelog": settings.shards}
    partitions = {t.shard_log: settings.shards}
    if not settings.direct:
        changelogs[f"{app_id}-answers-changelog"] = settings.merge_partitions
        partitions[t.answers] = settings.merge_partitions
    partitions |= changelogs
    partitions[f"{app_id}-__assignor-__leader"] = 1
    return partitions, {name: {"cleanup.policy": "compact"} for name in changelogs}


def source_topics(settings: Settings) -> list[str]:
    """Every topic the worker's agents read: the inputs, the shard log and, unless direct, the answers."""
    t = settings.topics
    return [t.offers, t.demands, t.financing, t.shard_log, *([] if settings.direct else [t.answers])]


def faust_credentials(security: KafkaSecurity) -> SASLCredentials | SSLCredentials | None:
    """The faust form of :class:`KafkaSecurity` (faust hands it to aiokafka for every client it makes)."""
    context = ssl_context(security)
    if security.uses_sasl:
        assert security.password is not None  # checked by KafkaSecurity
        return SASLCredentials(
            username=security.username,
            password=security.password.get_secret_value(),
            mechanism=security.sasl_mechanism,
            ssl_context=context,
        )
    return SSLCredentials(context) if context is not None else None


async def finish_in_steps(steps: Generator[None, None, T]) -> T:
    """Run ``steps`` to its end, giving the event loop a turn after each step: the web pages, the
    broker probe and the other agents go on while a long computation (a shard's rebuild) runs."""
    while True:
        try:
            next(steps)
        except StopIteration as finished:
            return cast(T, finished.value)
        await asyncio.sleep(0)


def aiokafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer under faust's, for :func:`send_batched` (faust has no batch send). Its
    batches are flushed with the rest before faust commits an offset."""
    return cast(AIOKafkaProducer, app.producer._ensure_producer())  # type: ignore[attr-defined]


def build_app(settings: Settings, bootstrap: str, config: MatchingConfig | None = None) -> faust.App:
    config = config or settings.matching
    topics = settings.topics
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{bootstrap}",
        broker_credentials=faust_credentials(settings.security),
        store="memory://",
        datadir=str(settings.data_dir / settings.app_id),
        autodiscover=False,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        table_standby_replicas=0,
        topic_replication_factor=1,
        producer_acks=-1,
        # Answers and table values are several KB: batch them (the default is one 16 KB batch, no wait).
        producer_linger=settings.producer_linger_s,
        producer_max_batch_size=1024 * 1024,
        # The answers and their changelog are most of what the worker writes, several KB of JSON per
        # answer: in bench.e2e at 20k, about 1.6 GB each uncompressed, and the worker waiting on the
        # broker's disk. zstd (level 3) shrinks them ~20x at ~670 MB/s here; Kafka ≥ 2.1 clients read it.
        producer_compression_type="zstd",
        table_key_serializer="json",
        table_value_serializer="raw",
        TableManager=WatchedTableManager,
    )
    seek_uncommitted_partitions_too(app)
    recovery = RecoveryWatch(app)
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(topics.offers, topics.demands, topics.financing, **raw)
    shard_log = app.topic(topics.shard_log, partitions=settings.shards, internal=True, **raw)
    book_table = written_through_table(app, "book", partitions=settings.shards, partition_of=shard_of_key)
    shards = ShardStage(book_table, shards=settings.shards, config=config, analyzer=default_analyzer())
    direct = settings.direct
    answers_table = None if direct else written_through_table(app, "answers", partitions=settings.merge_partitions)
    merger = Merger(
        {} if answers_table is None else answers_table,
        config=config,
        shards=settings.shards,
        partitions=settings.merge_partitions,
    )
    metrics = ServiceMetrics()
    progress: Progress = {}
    sources = set(source_topics(settings))
    topic_of_kind = {"offer": topics.offers, "demand": topics.demands, "financing": topics.financing}
    probe = BrokerProbe(bootstrap, settings.security)
    register_pages(
        app,
        metrics,
        lambda: not_ready_because(app, probe, recovery, shards, topics.shard_log, sources),
        lambda: consumer_lags(app, sources, progress),
    )

    @app.task
    async def probe_brokers() -> None:
        """At start, then every interval: a faust timer would first wait an interval, and the gauge
        would read "down" (and /ready "up") until then."""
        while not app.should_stop:
            metrics.broker_up.set(1 if await probe.check() else 0)
            await asyncio.sleep(settings.broker_probe_interval_s)

    async def send_answers(batch: Iterable[Answer]) -> None:
        if direct:
            for answer in batch:
                merger.receive_direct(merge_partition(answer.seeker, settings.merge_partitions), answer)
            await publish_merged()
            return
        for partition, bundle in bundle_answers(batch, settings.merge_partitions):
            await app.producer.send(topics.answers, None, bundle, partition, None, None)

    async def load_merger(partitions: list[int]) -> None:
        """Take merger partitions: what ``patent.matches`` holds for them becomes the emitted state
        (each event lies on its seeker's partition). Read in one pass and folded a fetch at a time,
        with a turn of the event loop after each: the topic holds millions of events."""
        started = time.perf_counter()
        folds = {partition: EmittedFold() for partition in partitions}
        async for values in read_batches(bootstrap, topics.matches, partitions, security=settings.security):
            for value in values:
                event = orjson.loads(value)
                seeker = (event["seeker"]["entity"], event["seeker"]["id"])
                folds[merge_partition(seeker, settings.merge_partitions)].add(event)
            await asyncio.sleep(0)
        for partition, fold in folds.items():
            merger.drop(partition)
            merger.load_fold(partition, fold)
        metrics.rebuild_seconds.labels("merger").observe(time.perf_counter() - started)

    rebuilding = asyncio.Lock()

    async def build_shard(shard: int) -> None:
        """Rebuild ``shard`` from the book table unless it is built, giving the event loop a turn between
        steps. One rebuild at a time: the table recovery's and the shard agent's could otherwise meet."""
        async with rebuilding:
            if shards.is_built(shard):
                return
            if direct:  # before the shard counts as built: its first answers find the merger ready
                await load_merger(list(range(settings.merge_partitions)))  # timed as the merger's rebuild
            started = time.perf_counter()
            resync = await finish_in_steps(shards.building(shard))
            if not shards.is_built(shard):
                log.info("shard rebuild abandoned: its partition was revoked meanwhile", extra={"shard": shard})
                return
            await send_answers(resync)
            await replay_unapplied(shard)
            seconds = time.perf_counter() - started
            metrics.rebuild_seconds.labels("shard").observe(seconds)
            metrics.set_book(shard, shards.book_sizes(shard))
            log.info("shard rebuilt", extra={"shard": shard, "seekers": len(resync), "seconds": round(seconds, 3)})

    def assigned(topic: str, partition: int) -> bool:
        return any(tp.topic == topic and tp.partition == partition for tp in app.consumer.assignment())

    async def route_input(r: Record) -> None:
        outcome = route(r.value, Source(r.topic, r.partition, r.offset, r.key), settings, received_at=datetime.now(UTC))
        if isinstance(outcome, DeadLetter):
            await app.producer.send(topics.deadletter, r.key, encode(outcome), None, None, None)
            metrics.dead_lettered(r.topic, outcome.error_kind)
            log.info("dead letter", extra={"topic": r.topic, "offset": r.offset, "error_kind": outcome.error_kind})
        elif direct and shards.is_built(0):
            await apply_event(0, None, outcome.key, outcome.value, outcome.event)
        else:
            for shard in range(settings.shards):
                await app.producer.send(topics.shard_log, outcome.key, outcome.value, shard, None, None)
        progress[(r.topic, r.partition)] = r.offset + 1

    let_go: dict[int, int] = {}
    """Per shard: one past the highest shard-log offset this worker was handed and let go of without
    applying it (see :func:`built_for`). Its next build of the shard replays up to there."""

    async def apply_to_shard(r: Record) -> None:
        assert r.key is not None  # the intake keys every shard-log record
        if not shards.is_built(r.partition) and not await built_for(r):
            return
        await apply_event(r.partition, r.offset, r.key, r.value)
        progress[(r.topic, r.partition)] = r.offset + 1

    async def built_for(r: Record) -> bool:
        """Build the shard of a shard-log record from a table recovered for the current assignment only
        (:class:`RecoveryWatch`): faust hands records over before it counts a recovery as done, and also
        in the tail of one that the next rebalance cut short, and a shard built from half a table stays
        wrong. If the partition is revoked, or another rebalance begins, before the shard is built, the
        record is let go (False): faust's revocation waits for it (``Consumer.wait_empty``, without a
        time limit), and the watch hears of the revocation only after that wait. Whoever builds the
        shard next replays the record from the log (:func:`replay_unapplied`)."""
        rebalances, waiting_since = app.rebalancing_count, time.monotonic()
        while not shards.is_built(r.partition):
            if (
                app.rebalancing_count != rebalances
                or time.monotonic() - waiting_since > LET_GO_AFTER_S
                or not assigned(r.topic, r.partition)
            ):
                let_go[r.partition] = max(let_go.get(r.partition, 0), r.offset + 1)
                metrics.let_go.labels(str(r.partition)).inc()
                log.info("shard-log record let go", extra={"shard": r.partition, "offset": r.offset})
                return False
            if recovery.recovered():
                await build_shard(r.partition)
            else:
                await asyncio.sleep(REBUILD_POLL_S)
        return True

    async def replay_unapplied(shard: int) -> None:
        """Apply the shard-log records that the group committed, or that this worker let go of, and the
        book table does not hold: those after the shard's last applied offset and before where its
        consumer resumes. Normally there are none (an offset is committed after its table writes). If
        the brokers do not answer, it tries again every second until they do or the shard is revoked."""
        start = shards.applied_through(shard) + 1
        while True:
            try:
                resume = await committed_offset(
                    bootstrap, settings.app_id, topics.shard_log, shard, security=settings.security
                )
                end = max(resume, let_go.get(shard, 0))
                records = await read_range(bootstrap, topics.shard_log, shard, start, end, security=settings.security)
                break
            except KafkaError as exc:
                if not shards.is_built(shard) or app.should_stop:
                    return
                log.warning("shard-log replay waits for the brokers", extra={"shard": shard, "error": repr(exc)})
                await asyncio.sleep(1.0)
        let_go.pop(shard, None)
        if not records:
            return
        metrics.read_back.labels(topics.shard_log, "unapplied").inc(len(records))
        for record in records:
            if not shards.is_built(shard):
                return  # revoked meanwhile: its next owner replays them
            assert record.key is not None
            await apply_event(shard, record.offset, record.key, record.value)
        log.warning(
            "shard-log records replayed after a rebuild",
            extra={"shard": shard, "from": start, "to": end, "records": len(records)},
        )

    async def apply_event(
        shard: int, offset: int | None, key: bytes, value: bytes, event: InputEvent | None = None
    ) -> None:
        """Apply a valid event to a built shard: a shard-log record (``offset``), or, direct, an input
        event taken at once, decoded by the intake (None and ``event``: see :meth:`ShardStage.apply`)."""
        step = shards.apply(shard, offset, key, value, event)
        await book_table.write_through()
        if shard == 0:  # every shard sees every event: count it once
            metrics.events.labels(topic_of_kind[key.decode().split(":", 1)[0]], step.outcome).inc()
        metrics.engine_seconds.labels(step.trigger).observe(step.engine_seconds)
        metrics.candidates.labels(step.trigger).observe(step.candidates)
        metrics.set_book(shard, shards.book_sizes(shard))
        log.debug("event applied", extra={"key": key.decode(), "shard": shard, "outcome": step.outcome})

    async def merge_answer(r: Record) -> None:
        assert answers_table is not None  # the merge agent runs only when the service is not direct
        if not merger.is_loaded(r.partition):
            await load_merger([r.partition])
        for answer in split_bundle(r.value):
            merger.receive(r.partition, answer)
        await answers_table.write_through()
        progress[(r.topic, r.partition)] = r.offset + 1

    guard = GapGuard(bootstrap, settings.app_id, settings.security)

    async def take_each(
        stage: str,
        stream: faust.StreamT[bytes],
        handle: Callable[[Record], Awaitable[None]],
        batch: Batch | None = None,
    ) -> None:
        """Hand every record of ``stream`` to ``handle`` in offset order, gaps included (see
        :mod:`streams.gaps`), and let ``batch`` flush when it is due."""
        record_age = metrics.record_age.labels(stage)
        async for event in stream.events():
            if batch is not None:
                batch.before_record()
            m = event.message
            record_age.observe(max(0.0, time.time() - m.timestamp))
            skipped = await guard.missed(m.topic, m.partition, m.offset)
            if skipped:
                metrics.read_back.labels(m.topic, "skipped").inc(len(skipped))
            for missed in skipped:
                await handle(missed)
            await handle(Record(m.topic, m.key, m.value, m.partition, m.offset))
            if batch is not None:
                await batch.after_record()

    async def answer_changed_seekers() -> None:
        """Send the answers of the events applied since the last call. A crash before they are sent
        loses nothing: a restarted shard answers for every seeker it holds (:meth:`ShardStage.build`)."""
        for shard in sorted(shards.owned()):
            await send_answers(shards.take_answers(shard))

    announcing = asyncio.Lock()

    async def publish_merged() -> None:
        """Announce what the answers taken since the last call changed. A crash before it loses nothing:
        the merger compares every seeker again when it takes a partition (:meth:`Merger.load_fold`).

        One announcement at a time, taken and sent under a lock: a batch waits for the previous one of
        its partition to leave the producer (:func:`send_batched`), and direct, the shard's resync and
        its next answers announce from two tasks. Had the later one sent meanwhile, a seeker's events
        would reach the topic out of order (a revoke before its match), and the folded matches would
        stay wrong. Without the lock, one of five SIGKILL restarts of a one-shard worker never settled
        on the oracle: the likely cause, not shown."""
        async with announcing:
            announced = merger.take_events(emitted_at=datetime.now(UTC))
            records = [(out.partition, out.seeker_id.encode(), out.value) for out in announced]
            await send_batched(aiokafka_producer(app), topics.matches, records)
            metrics.emitted(announced)
            if log.isEnabledFor(logging.DEBUG):
                for out in announced:
                    log.debug(
                        "match event",
                        extra={"type": out.type, "match_id": out.match_id, "trigger_event_id": out.trigger_event_id},
                    )

    interval, idle = settings.batch_interval_s, settings.batch_idle_s
    records_begin = asyncio.Event()
    answering = Batch(
        answer_changed_seekers,
        interval=interval,
        idle=idle,
        activity=records_begin,
        full=lambda: shards.unanswered() >= settings.batch_full_seekers,
    )
    publishing = Batch(publish_merged, interval=interval, idle=idle, activity=records_begin)
    # Direct, answers are announced as they are taken: a flush of ``publishing`` on its own could
    # announce a merger partition taken before its shard's resync came, revoking all it holds.
    batches = [answering] if direct else [answering, publishing]

    @app.task
    async def flush_batches() -> None:
        """Flush what the agents hold when records stop coming (a loop, not ``app.timer``: a timer
        warns each time a flush outlasts its interval, which is every few flushes in a backlog). It
        ticks every ``batch_idle_s`` only while a stage holds records; otherwise it waits for the next
        record, checking every ``batch_interval_s`` for a flush that is due all the same."""
        while not app.should_stop:
            if any(batch.busy for batch in batches):
                await asyncio.sleep(idle)
            else:
                await answering.wait_for_records(interval)
            for batch in batches:
                await batch.flush_if_waiting()

    @app.agent(inputs, concurrency=1)
    async def validate(stream: faust.StreamT[bytes]) -> None:
        await take_each("validate", stream, route_input, answering if direct else None)

    @app.agent(shard_log, concurrency=1)
    async def shard(stream: faust.StreamT[bytes]) -> None:
        await take_each("shard", stream, apply_to_shard, answering)

    if not direct:
        answers = app.topic(topics.answers, partitions=settings.merge_partitions, internal=True, **raw)

        @app.agent(answers, concurrency=1)
        async def merge(stream: faust.StreamT[bytes]) -> None:
            await take_each("merge", stream, merge_answer, publishing)

    @app.task
    async def rebuild_assigned_shards() -> None:
        """Build every assigned shard once the book table is recovered for the current assignment (see
        :class:`RecoveryWatch`; not in the table's ``on_recover``, which faust calls also for a recovery
        cut short): a shard whose records are quiet still announces its resync."""
        while not app.should_stop:
            if recovery.recovered() and not app.rebalancing:
                assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.shard_log}
                for shard in sorted(assigned - shards.owned()):
                    await build_shard(shard)
            await asyncio.sleep(REBUILD_POLL_S)

    @app.on_partitions_revoked.connect
    async def drop_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        for tp in revoked:
            progress.pop((tp.topic, tp.partition), None)
            guard.forget(tp.topic, tp.partition)
            if tp.topic == topics.shard_log:
                shards.drop(tp.partition)
                metrics.forget_shard(tp.partition)
                if direct:
                    for partition in range(settings.merge_partitions):
                        merger.drop(partition)
            elif tp.topic == topics.answers:
                merger.drop(tp.partition)

    return app
