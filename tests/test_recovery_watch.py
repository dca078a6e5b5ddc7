"""When a shard may be built from the book table, and the worker called ready (``RecoveryWatch``),
driven through faust's own signals and recovery object, without a broker: the cases faust's flags got
wrong on 4 December."""

from __future__ import annotations

import faust

from matcher import MatchingConfig
from matcher.text import default_analyzer
from streams.health import BrokerProbe, not_ready_because
from streams.settings import PLAINTEXT
from streams.sharding import ShardStage
from streams.tables import RecoveryWatch, WatchedTableManager


def app_and_watch() -> tuple[faust.App, RecoveryWatch]:
    app = faust.App("recovery-watch-test", broker="kafka://127.0.0.1:1", TableManager=WatchedTableManager)
    return app, RecoveryWatch(app)


async def assigned(app: faust.App, generation: int) -> None:
    app.consumer_generation_id = generation  # faust's consumer thread sets it before the signal
    await app.on_partitions_assigned.send(set())


async def test_recovered_only_once_the_current_generations_recovery_ran_to_its_end() -> None:
    app, watch = app_and_watch()
    assert not watch.recovered(), "nothing assigned yet"
    await assigned(app, 1)
    assert not watch.recovered(), "assigned, not recovered"
    app.tables.recovery.completed_generation = 1
    assert watch.recovered()


async def test_a_recovery_cut_short_by_the_next_assignment_does_not_count() -> None:
    app, watch = app_and_watch()
    await assigned(app, 1)
    app.tables.recovery.completed_generation = 1
    await app.on_partitions_revoked.send(set())
    await assigned(app, 2)
    assert not watch.recovered(), "generation 1's state, generation 2's partitions"
    await app.on_partitions_revoked.send(set())
    await assigned(app, 3)
    app.tables.recovery.completed_generation = 2  # faust completes the cut-short one all the same
    assert not watch.recovered()
    app.tables.recovery.completed_generation = 3
    assert watch.recovered()


async def test_a_recovery_finishing_after_the_next_revocation_does_not_count() -> None:
    app, watch = app_and_watch()
    await assigned(app, 18)
    await app.on_partitions_revoked.send(set())
    app.tables.recovery.completed_generation = 18  # its tail, after the revocation, before the assignment
    assert not watch.recovered(), "revoked: the next assignment may bring partitions not read yet"
    await assigned(app, 19)
    assert not watch.recovered()


async def test_ready_waits_for_the_watch_where_fausts_flags_say_recovered() -> None:
    """``/ready`` says the tables are not recovered while the watch says so, though faust's own flags
    (set by a cut-short recovery's tail) say they are."""
    app, watch = app_and_watch()
    probe = BrokerProbe("127.0.0.1:1", PLAINTEXT)
    probe.checked = True  # the brokers answer
    shards = ShardStage({}, shards=1, config=MatchingConfig(), analyzer=default_analyzer())
    app.tables.recovery.completed.set()

    def reasons() -> list[str]:
        return not_ready_because(app, probe, watch, shards, "shard-log", {"shard-log"})

    await assigned(app, 4)
    app.tables.recovery.completed_generation = 3
    assert "table recovery is not complete" in reasons()
    app.tables.recovery.completed_generation = 4
    assert "table recovery is not complete" not in reasons()
