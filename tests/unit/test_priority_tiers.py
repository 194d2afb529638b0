"""Priorities under a backlog in QStash mode, as plain code on the in-memory job store: each
priority tier is claimed up to its own cap of jobs in flight and published under its own
flow-control key, so a backlog never holds an urgent job back; and the tiers' settings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from embedq.errors import ConfigError
from embedq.jobs import JobStatus
from embedq.listener.sinks import LocalSink, QStashSink
from embedq.listener.worker import Claimer, ListenerConfig
from embedq.processing import Processor
from embedq.settings import DEFAULT_TIERS, PriorityTier, Settings
from embedq.store import Source
from embedq.testing import HashEmbedder, InMemoryJobStore, ManualClock

SOURCES = (
    Source("course", "app.courses", "id", ("title",), priority=2),
    Source("lesson", "app.lessons", "id", ("title",), priority=3),
    Source("comment", "app.comments", "id", ("body",), priority=5),
    Source("note", "app.notes", "id", ("body",), priority=9),
)
QSTASH_ENV = {"QSTASH_TOKEN": "test-token", "EMBEDQ_WEBHOOK_URL": "https://hooks.example.com/v1/jobs"}


class FakeQStash:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.on_publish: Any = None

    async def publish_batch(self, requests: list[dict[str, Any]]) -> list[str]:
        self.calls.append(requests)
        if self.on_publish is not None:
            self.on_publish()
        return [f"msg-{len(self.calls)}-{n}" for n in range(len(requests))]

    async def aclose(self) -> None:
        pass

    def published(self) -> list[tuple[str, str]]:
        return [(j["content_type"], j["source_id"]) for call in self.calls for r in call for j in r["body"]["jobs"]]


class World:
    def __init__(self, env: dict[str, str] | None = None, **settings: Any) -> None:
        self.store = InMemoryJobStore(SOURCES, clock=ManualClock())
        self.qstash = FakeQStash()
        self.embedder = HashEmbedder()
        self.settings = Settings.from_env({**QSTASH_ENV, **(env or {})}, **settings)
        config = ListenerConfig(batch_window=0.0, poll_interval=0.01)
        local = LocalSink(
            Processor(self.store, self.embedder, self.settings), self.store, batch_size=10, lease_seconds=60
        )
        self.sink = QStashSink(self.qstash, self.store, self.settings, local)
        self.claimer = Claimer(self.store, self.sink, config, worker="unit", model=None)

    def write(self, content_type: str, text: str) -> tuple[str, str]:
        field = next(s.fields[0] for s in SOURCES if s.content_type == content_type)
        return (content_type, self.store.write_row(content_type, {field: text}))

    async def round(self) -> list[tuple[str, str]]:
        """One claim and publish, as the listener's loop does; what it published."""
        before = len(self.qstash.published())
        jobs = await self.claimer.claim()
        if jobs:
            await self.sink.take(jobs)
        return self.qstash.published()[before:]

    async def webhook_finishes(self, keys: list[tuple[str, str]]) -> None:
        """What the webhook does with a delivery: accept the jobs, embed them, end them done."""
        ids = [j.id for j in self.store.jobs.values() if j.key in keys and j.status is JobStatus.DISPATCHED]
        accepted = await self.store.accept(ids, "webhook", 60)
        await self.store.complete(accepted, self.embedder.model, {})

    def in_flight(self, content_type: str) -> int:
        return sum(
            1
            for j in self.store.jobs.values()
            if j.content_type == content_type and j.status in (JobStatus.DISPATCHED, JobStatus.PROCESSING)
        )


async def test_each_tier_is_published_under_its_own_flow_control_key_and_parallelism():
    world = World({"EMBEDQ_QSTASH_TIERS": "1-2:4,3-4,5-9:1", "EMBEDQ_QSTASH_PARALLELISM": "3"})
    for content_type in ("note", "comment", "lesson", "course"):
        world.write(content_type, f"a {content_type}")

    await world.claimer.work(drain=True)

    [requests] = world.qstash.calls  # still one /v2/batch call per claim
    flow = {r["body"]["jobs"][0]["content_type"]: r["flow_control"] for r in requests}
    assert flow == {
        "course": {"key": "embedq-webhook-p1-2", "parallelism": 4},
        "lesson": {"key": "embedq-webhook-p3-4", "parallelism": 3},
        "comment": {"key": "embedq-webhook-p5-9", "parallelism": 1},
        "note": {"key": "embedq-webhook-p5-9", "parallelism": 1},
    }


async def test_a_backlog_fills_only_its_tiers_cap_and_an_urgent_job_is_published_at_once():
    world = World(dispatch_max_in_flight=3, jobs_per_message=2)
    notes = [world.write("note", f"note {n}") for n in range(7)]

    assert await world.round() == notes[:3]  # oldest first, up to the cap
    plan = await world.sink.plan()
    assert [(c.priorities, c.limit) for c in plan.tiers] == [((None, 2), 3), ((3, 4), 3), ((5, None), 0)]
    assert plan.recheck is not None  # room is made by deliveries ending, which wake nobody
    assert await world.round() == []

    course = world.write("course", "urgent")
    assert await world.round() == [course]  # its own tier has room: no wait for the backlog

    await world.webhook_finishes([*notes[:2], course])
    assert await world.round() == notes[3:5]
    assert world.in_flight("note") == 3
    assert (await world.sink.plan()).recheck is not None


async def test_a_draining_listener_waits_for_room_until_the_whole_backlog_is_published():
    world = World(dispatch_max_in_flight=3, jobs_per_message=1)
    notes = [world.write("note", f"note {n}") for n in range(8)]
    most_in_flight = 0

    def measure() -> None:
        nonlocal most_in_flight
        most_in_flight = max(most_in_flight, world.in_flight("note"))

    world.qstash.on_publish = measure
    webhook_done = asyncio.Event()

    async def webhook() -> None:
        while not webhook_done.is_set():
            dispatched = [j.key for j in world.store.jobs.values() if j.status is JobStatus.DISPATCHED]
            await world.webhook_finishes(dispatched[:1])  # one delivery at a time
            await asyncio.sleep(0.005)

    deliveries = asyncio.create_task(webhook())
    try:
        await asyncio.wait_for(world.claimer.work(drain=True), timeout=30)
    finally:
        webhook_done.set()
        await deliveries

    assert sorted(world.qstash.published()) == sorted(notes)
    assert most_in_flight == 3


async def test_a_tier_at_its_cap_with_nothing_waiting_lets_a_draining_listener_end():
    world = World(dispatch_max_in_flight=3)
    notes = [world.write("note", f"note {n}") for n in range(3)]

    await asyncio.wait_for(world.claimer.work(drain=True), timeout=5)  # no webhook ends them

    assert sorted(world.qstash.published()) == sorted(notes) and world.in_flight("note") == 3
    assert (await world.sink.plan()).recheck is None
    world.write("note", "one more")
    assert (await world.sink.plan()).recheck is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, DEFAULT_TIERS),
        ("1-9", (PriorityTier(1, 9),)),
        ("1,2-4:6, 5-9:2", (PriorityTier(1, 1), PriorityTier(2, 4, 6), PriorityTier(5, 9, 2))),
        ("1-2,4-9", "p4-9 does not follow on"),
        ("2-9", "p2-9 does not follow on"),
        ("1-5,3-9", "p3-9 does not follow on"),
        ("1-2,3-8", "must end at 9"),
        ("1-2:0,3-9", "is not a tier like 1-2 or 1-2:4"),
        ("high,low", "is not a tier like 1-2 or 1-2:4"),
    ],
)
def test_tiers_cover_every_priority_once(raw, expected):
    env = {} if raw is None else {"EMBEDQ_QSTASH_TIERS": raw}
    if isinstance(expected, str):
        with pytest.raises(ConfigError, match="EMBEDQ_QSTASH_TIERS") as raised:
            Settings.from_env(env)
        assert expected in str(raised.value)
    else:
        assert Settings.from_env(env).qstash_tiers == expected


def test_a_tier_without_its_own_parallelism_takes_the_shared_one():
    settings = Settings.from_env({"EMBEDQ_QSTASH_TIERS": "1-2:4,3-9", "EMBEDQ_QSTASH_PARALLELISM": "6"})
    assert [settings.tier_parallelism(t) for t in settings.qstash_tiers] == [4, 6]
    with pytest.raises(ConfigError, match="EMBEDQ_DISPATCH_MAX_IN_FLIGHT"):
        Settings.from_env({"EMBEDQ_DISPATCH_MAX_IN_FLIGHT": "0"})
