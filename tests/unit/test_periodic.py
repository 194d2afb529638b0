"""The periodic-service base and the services built on it, as plain code on the in-memory store."""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np
import pytest

from embedq import metrics
from embedq.jobs import JobStatus
from embedq.listener.indexer import Indexer
from embedq.listener.rescuer import Rescuer
from embedq.periodic import PeriodicService, sleep_until
from embedq.store import ChunkWrite, Source, SourceWrite
from embedq.testing import InMemoryJobStore, ManualClock

SOURCES = (Source("course", "app.courses", "id", ("title",), priority=2),)


class Scripted(PeriodicService):
    """Each round does the next thing in its script: raise it, or return it."""

    action = "scripted"

    def __init__(self, script: list, **kwargs) -> None:
        super().__init__(**kwargs)
        self.script = list(script)
        self.rounds = 0

    async def run_once(self) -> bool:
        self.rounds += 1
        step = self.script.pop(0) if self.script else False
        if isinstance(step, BaseException):
            raise step
        return step


async def test_sleep_until_returns_early_once_the_event_is_set():
    event = asyncio.Event()
    assert await sleep_until(event, 0.01) is False
    event.set()
    assert await sleep_until(event, 3600) is True


@pytest.mark.parametrize(
    ("script", "rounds"),
    [
        ([True], 1),
        ([False, False, True], 3),
        # a round that cannot reach the database, or whose statement fails, is not the last
        ([OSError("connection refused"), True], 2),
        ([asyncpg.exceptions.UndefinedTableError("relation does not exist"), False, True], 3),
    ],
)
async def test_a_service_runs_rounds_until_done_and_survives_database_errors(script, rounds):
    service = Scripted(script, interval=0)
    await asyncio.wait_for(service.run(asyncio.Event()), 10)
    assert service.rounds == rounds


async def test_a_service_stops_between_rounds_and_during_its_first_delay():
    stop = asyncio.Event()
    waiting = Scripted([], interval=3600, first_delay=3600)
    task = waiting.start(stop)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert waiting.rounds == 0

    other = Scripted([], interval=3600)
    task = other.start(stop := asyncio.Event())
    while other.rounds == 0:
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert other.rounds == 1


async def test_a_service_that_is_not_a_database_error_still_fails_loudly():
    with pytest.raises(ZeroDivisionError):
        await Scripted([ZeroDivisionError()], interval=0).run(asyncio.Event())


async def test_the_rescuer_returns_expired_leases():
    clock = ManualClock()
    store = InMemoryJobStore(SOURCES, clock=clock)
    store.write_row("course", {"title": "crashed"})
    [claimed] = await store.claim("gone", 10, lease=30, max_attempts=5, model=None)
    rescuer = Rescuer(store)

    assert await rescuer.rescue() == 0
    clock.advance(31)
    assert await rescuer.rescue() == 1
    assert store.jobs[claimed.id].status is JobStatus.FAILED
    assert rescuer.interval == Rescuer.default_interval


async def test_the_indexer_builds_once_there_are_enough_vectors_then_ends():
    store = InMemoryJobStore(SOURCES)
    indexer = Indexer(store, "m", min_rows=2, interval=0)
    vector = np.ones(4, dtype=np.float32)
    for n in range(2):
        assert await indexer.run_once() is False
        source_id = store.write_row("course", {"title": f"c{n}"})
        [claimed] = await store.claim("w", 1, lease=60, max_attempts=5, model=None)
        await store.complete(
            [claimed], "m", {("course", source_id): SourceWrite(1, [ChunkWrite(0, vector, f"h{n}", "t")])}
        )
    assert await indexer.run_once() is True
    assert await store.index_state("m") == "ready"


async def test_queue_metrics_follow_the_queue_and_emptied_statuses_go_to_zero():
    store = InMemoryJobStore(SOURCES)
    store.write_row("course", {"title": "a"})
    await store.ingest()
    refresh = metrics.QueueRefresh(store)

    await refresh.run_once()
    assert metrics.QUEUE_DEPTH.labels("pending", "2")._value.get() == 1

    await store.claim("w", 1, lease=60, max_attempts=5, model=None)
    await refresh.run_once()
    assert metrics.QUEUE_DEPTH.labels("pending", "2")._value.get() == 0
    assert metrics.QUEUE_DEPTH.labels("processing", "2")._value.get() == 1
