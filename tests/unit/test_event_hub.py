"""The event hub of GET /v1/events without a database: notifications are fed to it as the
LISTEN connection would, and streams are read as the SSE response reads them."""

from __future__ import annotations

import asyncio
import json

import pytest

from embedq import metrics
from embedq.webhook import events as events_module
from embedq.webhook.events import Event, EventHub, Resync, parse_notification


def notification(kind: str, *jobs: tuple[int, str, str | None, int], error: str | None = None) -> str:
    message: dict = {"event": kind, "jobs": [list(job) for job in jobs]}
    if error is not None:
        message["error"] = error
    return json.dumps(message)


def hub(**limits) -> EventHub:
    built = EventHub("postgresql://unused/db", "embedq-tests", **limits)  # its Notifier never runs here
    built._on_notification(None)  # connected
    return built


def dropped() -> float:
    return metrics.REGISTRY.get_sample_value("embedq_events_dropped_total") or 0.0


async def take(subscription, count: int) -> list:
    """The next `count` server-sent events of a stream, as (id, event, data)."""
    stream = subscription.server_sent_events()
    taken = []
    for _ in range(count):
        sse = await asyncio.wait_for(anext(stream), 2)
        taken.append((sse.id, sse.event, None if sse.data is None else json.loads(sse.data)))
    await stream.aclose()
    return taken


def test_a_notification_is_read_as_one_event_per_job():
    assert parse_notification(
        notification("failed", (7, "course", "42", 100), (8, "post", None, 101), error="boom")
    ) == [
        Event(100, "failed", 7, "course", "42", "boom"),
        Event(101, "failed", 8, "post", None, "boom"),
    ]


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "{}",
        '{"event": "done"}',
        '{"event": "done", "jobs": [[1, "course", "1"]]}',  # no event id: an older jobs_announce
        '{"event": "done", "jobs": [[1, "course", "1", "x"]]}',
        '{"event": 5, "jobs": []}',
        '{"event": "failed", "error": ["a"], "jobs": []}',
    ],
)
def test_an_unreadable_notification_is_refused(payload):
    with pytest.raises(ValueError):
        parse_notification(payload)


async def test_a_resume_gets_what_came_after_its_event_and_only_what_it_asked_for():
    events = hub()
    events._on_notification(notification("queued", (1, "course", "1", 10), (2, "post", "1", 11)))
    events._on_notification(notification("done", (1, "course", "1", 12), (2, "post", "1", 13)))
    resumed = events.subscribe("10", content_type="course")
    assert await take(resumed, 1) == [
        ("12", "done", {"id": 12, "event": "done", "job_id": 1, "content_type": "course", "source_id": "1"})
    ]
    everything = events.subscribe("10")
    assert [sse[0] for sse in await take(everything, 3)] == ["11", "12", "13"]


async def test_an_unknown_or_evicted_event_asks_for_a_resync():
    events = hub(replay_window=2)
    for n in range(1, 4):
        events._on_notification(notification("queued", (n, "course", str(n), 100 + n)))
    for last_event_id in ("101", "999", "not-a-number", "\u00b2", "9" * 5000):  # 101 fell out of a window of 2
        [(event_id, kind, data)] = await take(events.subscribe(last_event_id), 1)
        assert (event_id, kind) == (None, "resync")
        assert "not among the last 2 events" in data["reason"]
    assert [sse[0] for sse in await take(events.subscribe("102"), 1)] == ["103"]


async def test_a_lost_database_connection_tells_every_client_to_resync():
    events = hub()
    events._on_notification(notification("queued", (1, "course", "1", 10)))
    live = events.subscribe(content_type="course", source_id="1")
    events._on_notification(None)  # reconnected: notifications sent meanwhile are lost
    events._on_notification(notification("done", (1, "course", "1", 20)))
    assert [(sse[0], sse[1]) for sse in await take(live, 2)] == [(None, "resync"), ("20", "done")]
    # a client resuming from before the gap hears of it at its place in the stream
    assert [(sse[0], sse[1]) for sse in await take(events.subscribe("10"), 2)] == [(None, "resync"), ("20", "done")]


async def test_a_filtered_stream_reports_its_place(monkeypatch):
    monkeypatch.setattr(events_module, "POSITION_DELAY", 0.01)
    events = hub()
    watching = events.subscribe(content_type="course", source_id="1")
    events._on_notification(notification("queued", (5, "post", "9", 30), (6, "post", "10", 31)))
    assert await take(watching, 1) == [("31", None, None)]  # `id: 31` and no data
    events._on_notification(notification("done", (5, "post", "9", 32)))
    events._on_notification(notification("queued", (7, "course", "1", 33)))
    assert [(sse[0], sse[1]) for sse in await take(watching, 1)] == [("33", "queued")]


async def test_a_client_that_falls_behind_is_cut_off_and_counted():
    events = hub(client_backlog=2)
    slow = events.subscribe()
    keeping_up = events.subscribe(content_type="post")
    dropped_before = dropped()
    events._on_notification(notification("queued", *[(n, "course", str(n), 100 + n) for n in range(1, 4)]))
    assert slow not in events.subscriptions and keeping_up in events.subscriptions
    assert dropped() - dropped_before == 3
    assert [sse async for sse in slow.server_sent_events()] == []  # its stream ends: the client reconnects
    # and resumes from the replay window
    assert [sse[0] for sse in await take(events.subscribe("101"), 2)] == ["102", "103"]


def test_the_window_keeps_the_newest_events():
    events = hub(replay_window=3)
    for n in range(1, 6):
        events._on_notification(notification("queued", (n, "course", str(n), n)))
    assert [item.id for item in events.window if not isinstance(item, Resync)] == [3, 4, 5]
    assert events.newest_id() == 5
