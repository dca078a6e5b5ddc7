"""When a stage's batch leaves: every ``interval`` in a backlog, ``idle`` after the last record at a
trickle, never twice at once. A fake clock stands in for time."""

from __future__ import annotations

import asyncio

import pytest

from streams.batching import Batch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def counting_batch(clock: Clock, interval: float = 0.020, idle: float = 0.002) -> tuple[Batch, list[float]]:
    flushes: list[float] = []

    async def flush() -> None:
        flushes.append(clock())

    return Batch(flush, interval=interval, idle=idle, clock=clock), flushes


async def record(batch: Batch, clock: Clock, seconds: float) -> None:
    batch.before_record()
    clock.now += seconds
    await batch.after_record()


async def test_at_a_trickle_a_record_leaves_once_the_stage_has_waited_idle(clock: Clock) -> None:
    batch, flushes = counting_batch(clock)
    await record(batch, clock, 0.001)
    clock.now += 0.001
    await batch.flush_if_waiting()
    assert flushes == []  # it may be followed at once by another record
    clock.now += 0.001
    await batch.flush_if_waiting()
    assert len(flushes) == 1
    clock.now += 0.003
    await batch.flush_if_waiting()
    assert len(flushes) == 1  # nothing held: nothing to send before the interval


async def test_in_a_backlog_records_are_held_for_the_interval(clock: Clock) -> None:
    batch, flushes = counting_batch(clock)
    for _ in range(24):
        await record(batch, clock, 0.004)
        await batch.flush_if_waiting()  # the timer finds the stage busy or just done: no flush
    assert flushes == [pytest.approx(100.020), pytest.approx(100.040), pytest.approx(100.060), pytest.approx(100.080)]


async def test_a_long_record_does_not_hold_what_came_before_it_beyond_the_interval(clock: Clock) -> None:
    batch, flushes = counting_batch(clock)
    await record(batch, clock, 0.001)
    batch.before_record()
    clock.now += 0.010
    await batch.flush_if_waiting()
    assert flushes == []
    clock.now += 0.010
    await batch.flush_if_waiting()
    assert len(flushes) == 1


async def test_two_flushes_never_run_at_once(clock: Clock) -> None:
    running = 0
    overlapped = False

    async def slow_flush() -> None:
        nonlocal running, overlapped
        running += 1
        overlapped |= running > 1
        await asyncio.sleep(0.01)
        running -= 1

    batch = Batch(slow_flush, interval=0.020, idle=0.002, clock=clock)
    await asyncio.gather(batch.flush(), batch.flush(), batch.flush())
    assert not overlapped


async def test_a_waiting_timer_wakes_when_a_record_of_either_stage_begins(clock: Clock) -> None:
    """An idle worker's timer waits instead of ticking every ``idle``; the first record of any stage it
    serves wakes it, long before its timeout."""
    shared = asyncio.Event()
    answering = Batch(no_op, interval=0.020, idle=0.002, clock=clock, activity=shared)
    publishing = Batch(no_op, interval=0.020, idle=0.002, clock=clock, activity=shared)
    assert not answering.busy and not publishing.busy
    waiting = asyncio.create_task(answering.wait_for_records(timeout=60))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    publishing.before_record()
    await asyncio.wait_for(waiting, timeout=5)
    assert publishing.busy and not answering.busy
    await publishing.after_record()
    assert publishing.busy, "records taken and not yet flushed keep the timer ticking"
    await publishing.flush()
    assert not publishing.busy


async def test_a_waiting_timer_still_returns_after_its_timeout(clock: Clock) -> None:
    """So that a flush due without records (a merger's resync after it takes a partition) still runs."""
    batch = Batch(no_op, interval=0.020, idle=0.002, clock=clock)
    await asyncio.wait_for(batch.wait_for_records(timeout=0.01), timeout=5)
    assert not batch.busy


async def no_op() -> None:
    return None


async def test_two_stages_feeding_one_batch_keep_it_busy_until_both_are_done(clock: Clock) -> None:
    """A direct worker's intake and shard both apply events, and answer through one batch: a record
    that one of them ends must not make the batch look idle while the other is still in its record."""
    batch, flushes = counting_batch(clock)
    batch.before_record()  # the shard begins a record
    await record(batch, clock, 0.001)  # the intake takes one meanwhile
    assert batch.busy
    clock.now += 0.005
    await batch.flush_if_waiting()
    assert flushes == []  # the shard's record is not done: it may change what the flush would send
    await batch.after_record()
    clock.now += 0.003
    await batch.flush_if_waiting()
    assert len(flushes) == 1 and not batch.busy


async def test_a_full_batch_leaves_after_its_record_however_young(clock: Clock) -> None:
    """A record whose answers fill the batch (an offer that changed a hundred seekers) leaves at once
    with what came before it; records after it are held again."""
    flushes: list[float] = []
    held = 0

    async def flush() -> None:
        nonlocal held
        flushes.append(clock())
        held = 0

    batch = Batch(flush, interval=0.020, idle=0.002, clock=clock, full=lambda: held >= 32)
    for changed in (3, 2, 40, 1, 2):
        batch.before_record()
        clock.now += 0.004
        held += changed
        await batch.after_record()
    assert flushes == [pytest.approx(100.012)]  # after the third record, not at the interval
    assert batch.busy  # the last two wait for the interval or the idle timer
