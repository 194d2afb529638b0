"""The claim loop as plain code, on the in-memory job store: what is claimed, in which order,
in which batches, and when a draining listener stops."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from embedq.errors import RetryableError
from embedq.jobs import Job, JobStatus
from embedq.listener.sinks import ClaimPlan, LocalSink, SinkOutcome
from embedq.listener.worker import Claimer, ListenerConfig
from embedq.processing import Processor
from embedq.settings import Settings
from embedq.store import Source
from embedq.testing import HashEmbedder, InMemoryJobStore, ManualClock

SOURCES = (
    Source("course", "app.courses", "id", ("title",), priority=2),
    Source("lesson", "app.lessons", "id", ("title",), priority=3),
    Source("post", "app.posts", "id", ("title",), priority=4),
    Source("comment", "app.comments", "id", ("body",), priority=5),
)
FIELD = {s.content_type: s.fields[0] for s in SOURCES}
SETTINGS = Settings.from_env({})


class RecordingSink(LocalSink):
    """The local sink, noting the content types of each batch it takes."""

    def __init__(self, store: InMemoryJobStore, embedder: HashEmbedder, config: ListenerConfig) -> None:
        super().__init__(
            Processor(store, embedder, SETTINGS),
            store,
            batch_size=config.batch_size,
            lease_seconds=config.lease_seconds,
            batch_window=config.batch_window,
        )
        self.batches: list[list[str]] = []

    async def take(self, jobs: Sequence[Job]) -> SinkOutcome:
        self.batches.append(sorted(j.content_type for j in jobs))
        return await super().take(jobs)


class LateWrites(InMemoryJobStore):
    """A store where rows are written right after the first claim, as if they arrived while the
    claimer waits its batch window."""

    def __init__(self, late: Sequence[str], **kwargs) -> None:
        super().__init__(SOURCES, **kwargs)
        self.late = list(late)
        self.claims = 0

    async def claim(self, *args, **kwargs) -> list[Job]:
        claimed = await super().claim(*args, **kwargs)
        self.claims += 1
        if self.claims == 1:
            for content_type in self.late:
                self.write_row(content_type, {FIELD[content_type]: f"late {content_type}"})
        return claimed


def write(store: InMemoryJobStore, *content_types: str) -> None:
    for n, content_type in enumerate(content_types):
        store.write_row(content_type, {FIELD[content_type]: f"{content_type} {n}"})


def claimer_for(store: InMemoryJobStore, embedder: HashEmbedder | None = None, **config) -> Claimer:
    settings = ListenerConfig(**{"batch_window": 0.0, "poll_interval": 0.01, **config})
    sink = RecordingSink(store, embedder or HashEmbedder(), settings)
    return Claimer(store, sink, settings, worker="unit", model=None)


def batches(claimer: Claimer) -> list[list[str]]:
    assert isinstance(claimer.sink, RecordingSink)
    return claimer.sink.batches


@pytest.mark.parametrize(
    ("written", "batch_size", "expected"),
    [
        # most urgent first, whatever the order of the writes
        (["comment", "post", "course"], 1, [["course"], ["post"], ["comment"]]),
        (["comment", "post", "lesson", "course"], 2, [["course", "lesson"], ["comment", "post"]]),
        # one priority: oldest first, in batches of batch_size
        (["post", "post", "post"], 2, [["post", "post"], ["post"]]),
        ([], 10, []),
    ],
)
async def test_jobs_are_claimed_most_urgent_first_in_batches(written, batch_size, expected):
    store = InMemoryJobStore(SOURCES)
    write(store, *written)
    claimer = claimer_for(store, batch_size=batch_size)

    await claimer.work(drain=True)

    assert batches(claimer) == expected
    assert claimer.totals.done == len(written) and claimer.totals.batches == len(expected)


@pytest.mark.parametrize(
    ("first", "late", "batch_window", "batch_size", "expected_claims", "expected"),
    [
        # a short low-priority claim waits the window once; what arrives meanwhile joins it
        (["comment"], ["comment"], 0.01, 10, 2, [["comment", "comment"]]),
        (["post"], ["comment"], 0.01, 10, 2, [["comment", "post"]]),
        # an urgent job is never held back: the late one is the next batch
        (["course"], ["comment"], 0.01, 10, 1, [["course"], ["comment"]]),
        (["comment", "lesson"], ["comment"], 0.01, 10, 1, [["comment", "lesson"], ["comment"]]),
        # a full claim, or no window, does not wait
        (["comment", "comment"], ["comment"], 0.01, 2, 1, [["comment", "comment"], ["comment"]]),
        (["comment"], ["comment"], 0.0, 10, 1, [["comment"], ["comment"]]),
    ],
)
async def test_low_priority_claims_wait_the_batch_window_once(
    first, late, batch_window, batch_size, expected_claims, expected
):
    store = LateWrites(late)
    write(store, *first)
    claimer = claimer_for(store, batch_window=batch_window, batch_size=batch_size)

    await claimer.sink.take(await claimer.claim())
    claims_for_first_batch = store.claims
    await claimer.work(drain=True)

    assert claims_for_first_batch == expected_claims
    assert batches(claimer) == expected


async def test_a_draining_listener_stops_once_nothing_is_runnable():
    clock = ManualClock()
    store = InMemoryJobStore(SOURCES, clock=clock)
    write(store, "course", "post", "comment")
    [in_flight] = await store.claim("elsewhere", 1, lease=60, max_attempts=5, model=None)  # the course
    embedder = HashEmbedder()
    embedder.fail_next = [RetryableError("provider busy (503)")]  # the post's first try
    claimer = claimer_for(store, embedder, batch_size=1)

    await claimer.work(drain=True)

    statuses = {j.content_type: j.status for j in store.jobs.values()}
    # processing elsewhere, backing off, done: none of them is runnable now
    assert statuses == {"course": JobStatus.PROCESSING, "post": JobStatus.FAILED, "comment": JobStatus.DONE}
    assert (claimer.totals.failed, claimer.totals.done) == (1, 1)

    clock.advance(SETTINGS.retry_max_seconds)  # the backoff is over
    await store.complete([in_flight], embedder.model, {})
    await claimer.work(drain=True)
    assert {j.status for j in store.jobs.values()} == {JobStatus.DONE}


async def test_a_stopped_claimer_takes_nothing_more():
    store = InMemoryJobStore(SOURCES)
    write(store, "course")
    claimer = claimer_for(store)
    claimer.stop()

    await claimer.work()

    assert batches(claimer) == [] and store.inbox and not store.jobs


async def test_the_claim_follows_the_sinks_plan():
    store = InMemoryJobStore(SOURCES)
    write(store, "course", "post")

    class DispatchPlan(RecordingSink):
        async def plan(self) -> ClaimPlan:
            return ClaimPlan(limit=1, lease=42.0, to=JobStatus.DISPATCHED)

    config = ListenerConfig(max_attempts=7)
    claimer = Claimer(store, DispatchPlan(store, HashEmbedder(), config), config, worker="unit", model=None)

    [job] = await claimer.claim()

    assert (job.content_type, job.status, job.attempts, job.max_attempts) == ("course", JobStatus.DISPATCHED, 0, 7)
    assert (job.lease_expires_at - job.updated_at).total_seconds() == 42.0
