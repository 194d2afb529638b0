"""The sinks as plain code, on the in-memory job store: the QStash sink's breaker and its
fallback to local processing, the messages it publishes, and the local sink's promises (a lost
claim writes nothing; a long batch keeps its lease)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from embedq.jobs import JobStatus
from embedq.listener.breaker import CircuitBreaker
from embedq.listener.heartbeat import Heartbeat
from embedq.listener.sinks import LocalSink, QStashSink
from embedq.listener.worker import Claimer, ListenerConfig
from embedq.processing import Processor
from embedq.qstash.client import PublishError
from embedq.settings import Settings
from embedq.store import Source
from embedq.testing import HashEmbedder, InMemoryJobStore, ManualClock

SOURCES = (
    Source("course", "app.courses", "id", ("title",), priority=2),
    Source("comment", "app.comments", "id", ("body",), priority=5),
)
WEBHOOK = "https://hooks.example.com/v1/jobs"
SETTINGS = Settings.from_env({"QSTASH_TOKEN": "test-token", "EMBEDQ_WEBHOOK_URL": WEBHOOK})
FAILURES, COOL_DOWN = 3, 30.0


class FakeQStash:
    """QStashClient's publish_batch: message ids while up, PublishError while down."""

    def __init__(self) -> None:
        self.up = True
        self.calls: list[list[dict[str, Any]]] = []
        self.on_publish: Callable[[], Awaitable[None]] | None = None
        self.closed = False

    async def publish_batch(self, requests: list[dict[str, Any]]) -> list[str]:
        self.calls.append(requests)
        if self.on_publish is not None:
            await self.on_publish()
        if not self.up:
            raise PublishError("QStash answered 503")
        return [f"msg-{len(self.calls)}-{n}" for n in range(len(requests))]

    async def dead_letters(self, url: str) -> list[dict[str, Any]]:
        if not self.up:
            raise PublishError("QStash answered 503")
        return []

    async def aclose(self) -> None:
        self.closed = True


class World:
    """A fake store and a fake QStash, one clock for both, and a listener's claimer on them."""

    def __init__(self, embedder: HashEmbedder | None = None, **settings: Any) -> None:
        self.clock = ManualClock()
        self.breaker_time = 0.0
        self.store = InMemoryJobStore(SOURCES, clock=self.clock)
        self.qstash = FakeQStash()
        self.embedder = embedder or HashEmbedder()
        self.settings = Settings.from_env({"QSTASH_TOKEN": "test-token", "EMBEDQ_WEBHOOK_URL": WEBHOOK}, **settings)
        config = ListenerConfig(batch_window=0.0, poll_interval=0.01, lease_seconds=60)
        self.local = LocalSink(
            Processor(self.store, self.embedder, self.settings),
            self.store,
            batch_size=config.batch_size,
            lease_seconds=config.lease_seconds,
        )
        breaker = CircuitBreaker(FAILURES, COOL_DOWN, clock=lambda: self.breaker_time)
        self.sink = QStashSink(self.qstash, self.store, self.settings, self.local, breaker)
        self.heartbeat = Heartbeat(self.store, "unit", self.sink)
        self.claimer = Claimer(self.store, self.sink, config, worker="unit", model=None, heartbeat=self.heartbeat)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.breaker_time += seconds

    def write(self, content_type: str, text: str) -> str:
        field = next(s.fields[0] for s in SOURCES if s.content_type == content_type)
        return self.store.write_row(content_type, {field: text})

    def job_of(self, content_type: str, source_id: str):
        [job] = [j for j in self.store.jobs.values() if j.key == (content_type, source_id)]
        return job


# (QStash up?, seconds since the previous round) -> (publish calls, where the job went, mode after)
HERE, QSTASH = "processed here", "published"
OUTAGE = [((False, 0), (1, HERE, "qstash"))] * (FAILURES - 1) + [((False, 0), (1, HERE, "fallback"))]


@pytest.mark.parametrize(
    "rounds",
    [
        pytest.param([((True, 0), (1, QSTASH, "qstash"))] * 2, id="healthy"),
        pytest.param(
            [((False, 0), (1, HERE, "qstash")), ((True, 0), (1, QSTASH, "qstash"))] * 3,
            id="failures-not-in-a-row-never-open-it",
        ),
        pytest.param(
            [
                *OUTAGE,
                ((False, 0), (0, HERE, "fallback")),  # open: QStash is not even asked
                ((True, COOL_DOWN - 1), (0, HERE, "fallback")),  # back, but the cool-down runs
                ((True, 1), (1, QSTASH, "qstash")),  # one trial publish decides
                ((True, 0), (1, QSTASH, "qstash")),
            ],
            id="outage-then-back",
        ),
        pytest.param(
            [
                *OUTAGE,
                ((False, COOL_DOWN), (1, HERE, "fallback")),  # the trial fails: another cool-down
                ((True, COOL_DOWN - 1), (0, HERE, "fallback")),
                ((True, 1), (1, QSTASH, "qstash")),
            ],
            id="failed-trial",
        ),
    ],
)
async def test_the_breaker_sends_jobs_here_while_qstash_fails(rounds):
    world = World()
    await world.heartbeat.announce()
    seen = []
    for n, ((up, seconds), _) in enumerate(rounds):
        world.advance(seconds)
        world.qstash.up = up
        calls = len(world.qstash.calls)
        source_id = world.write("course", f"round {n}")

        await world.claimer.work(drain=True)

        job = world.job_of("course", source_id)
        went = QSTASH if (job.status, job.attempts) == (JobStatus.DISPATCHED, 0) and job.message_id else HERE
        if went == HERE:
            assert (job.status, job.message_id) == (JobStatus.DONE, None)
        seen.append((len(world.qstash.calls) - calls, went, world.sink.mode))
        assert world.store.workers["unit"].mode == world.sink.mode  # announced as soon as it changes
    assert seen == [expected for _, expected in rounds]


async def test_one_batch_call_per_claim_one_message_per_priority():
    world = World(jobs_per_message=2)
    courses = [world.write("course", f"course {n}") for n in range(3)]
    comments = [world.write("comment", f"comment {n}") for n in range(2)]

    await world.claimer.work(drain=True)

    [requests] = world.qstash.calls
    messages = [[job["source_id"] for job in r["body"]["jobs"]] for r in requests]
    assert messages == [courses[:2], courses[2:], comments]
    assert {r["url"] for r in requests} == {WEBHOOK}
    assert {r["failure_callback"] for r in requests} == {"https://hooks.example.com/v1/failures"}
    assert len({r["deduplication_id"] for r in requests}) == 3
    assert all(r["flow_control"]["parallelism"] == world.settings.qstash_parallelism for r in requests)
    by_message = {}
    for job in world.store.jobs.values():
        assert job.status is JobStatus.DISPATCHED
        by_message.setdefault(job.message_id, []).append(job.source_id)
    assert sorted(by_message.values()) == sorted(messages)
    assert world.claimer.totals.dispatched == 5 and world.claimer.totals.batches == 0


async def test_a_failed_publish_processes_only_the_jobs_still_dispatched():
    world = World()
    world.qstash.up = False
    kept = world.write("course", "kept")
    cancelled = world.write("course", "cancelled")

    async def operator_cancels() -> None:
        await world.store.cancel(world.job_of("course", cancelled).id)

    world.qstash.on_publish = operator_cancels

    await world.claimer.work(drain=True)

    assert world.job_of("course", kept).status is JobStatus.DONE
    assert world.job_of("course", cancelled).status is JobStatus.DEAD
    assert list(world.store.vectors("course", kept, world.embedder.model)) == [0]
    assert world.store.vectors("course", cancelled, world.embedder.model) == {}


async def test_closing_the_sink_closes_its_client():
    world = World()
    await world.sink.aclose()
    assert world.qstash.closed


class HookedEmbedder(HashEmbedder):
    """Runs `during` while it embeds, as if the world moved on meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.during: Callable[[], Awaitable[None]] | None = None

    async def embed_documents(self, texts):
        if self.during is not None:
            await self.during()
        return await super().embed_documents(texts)


async def cancel_it(store: InMemoryJobStore, clock: ManualClock, job_id: int) -> JobStatus:
    await store.cancel(job_id)
    return JobStatus.DEAD


async def rescue_and_claim_elsewhere(store: InMemoryJobStore, clock: ManualClock, job_id: int) -> JobStatus:
    clock.advance(120)  # past the 60 s lease
    await store.rescue()
    await store.claim("another listener", 10, lease=60, max_attempts=5, model=None)
    return JobStatus.PROCESSING


async def delete_its_model_jobs(store: InMemoryJobStore, clock: ManualClock, job_id: int) -> JobStatus | None:
    del store.jobs[job_id]  # `embedq models drop` deletes a model's queued jobs
    return None


@pytest.mark.parametrize("lose", [cancel_it, rescue_and_claim_elsewhere, delete_its_model_jobs])
async def test_a_lost_claim_writes_nothing(lose):
    embedder = HookedEmbedder()
    clock = ManualClock()
    store = InMemoryJobStore(SOURCES, clock=clock)
    sink = LocalSink(Processor(store, embedder, SETTINGS), store, batch_size=10, lease_seconds=60)
    source_id = store.write_row("course", {"title": "edited"})
    [claimed] = await store.claim("unit", 10, lease=60, max_attempts=5, model=None)
    ended: list[JobStatus | None] = []

    async def lose_the_claim() -> None:
        ended.append(await lose(store, clock, claimed.id))

    embedder.during = lose_the_claim

    outcome = await sink.take([claimed])

    assert outcome.processed is not None and (outcome.processed.lost, outcome.processed.done) == ([claimed.id], [])
    assert store.vectors("course", source_id, embedder.model) == {}
    now = store.jobs.get(claimed.id)
    assert (now.status if now else None) == ended[0]


async def test_a_batch_longer_than_its_lease_keeps_it():
    embedder = HookedEmbedder()
    clock = ManualClock()
    store = InMemoryJobStore(SOURCES, clock=clock)
    lease = 0.15  # extended every 0.05 s of real time while the batch runs
    sink = LocalSink(Processor(store, embedder, SETTINGS), store, batch_size=10, lease_seconds=lease)
    store.write_row("course", {"title": "slow"})
    [claimed] = await store.claim("unit", 10, lease=lease, max_attempts=5, model=None)
    rescued = []

    async def slow_provider() -> None:
        clock.advance(10 * lease)  # the claim's first lease is long gone...
        await asyncio.sleep(4 * lease / 3)  # ...but the sink extends it meanwhile
        rescued.extend(await store.rescue())

    embedder.during = slow_provider

    outcome = await sink.take([claimed])

    assert rescued == []
    assert outcome.processed is not None and outcome.processed.done == [claimed.id]
    assert (store.jobs[claimed.id].status, store.jobs[claimed.id].attempts) == (JobStatus.DONE, 1)
