"""When a shard may be built from the book table (``RecoveryWatch``), driven through faust's own
signals and recovery object, without a broker: the cases faust's flags got wrong on 4 December."""

from __future__ import annotations

import faust

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
