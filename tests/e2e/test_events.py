"""GET /v1/events: an application sees "embedding ready" for its row without polling, and a
client that loses its connection resumes where it left off, on any webhook replica."""

from __future__ import annotations

import asyncio
import json

import httpx

from embedq.errors import RetryableError
from embedq.listener import Listener, ListenerConfig
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import serve_app
from tests.sse_client import SseStream, events, last_id, read_sse


async def drain(dsn, embedder, settings) -> None:
    await Listener(dsn, embedder, settings, ListenerConfig(batch_window=0.0)).run(drain=True)


def summary(items) -> list[tuple[str, str, str]]:
    return [(item.event, item.data["content_type"], item.data["source_id"]) for item in events(items)]


async def test_sse_delivers_state_changes_of_rows_written_after_subscribing(conn, dsn, settings):
    embedder = HashEmbedder()
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        other = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('not mine') RETURNING id")
        async with http.stream("GET", f"{url}/v1/events", params={"type": "course", "source_id": "2"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            mine = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('mine') RETURNING id")
            await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('another type')")
            await drain(dsn, embedder, settings)
            items = await read_sse(stream, until=lambda items: len(events(items)) == 3)
    assert (other, mine) == (1, 2)
    assert summary(items) == [("queued", "course", "2"), ("processing", "course", "2"), ("done", "course", "2")]
    got = events(items)
    assert len({item.data["job_id"] for item in got}) == 1
    ids = [int(item.id) for item in got]
    assert ids == sorted(set(ids)), "event ids increase"
    assert [item.data["id"] for item in got] == ids
    assert all("error" not in item.data for item in got)


async def test_a_processing_round_sends_one_notification_per_state(conn, dsn, settings):
    from embedq import db

    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'c' || g FROM generate_series(1, 40) g")
    watcher = await db.connect(dsn, "embedq-tests-events")
    payloads: list[dict] = []
    await watcher.add_listener("embedq_events", lambda *args: payloads.append(json.loads(args[3])))
    try:
        await Listener(dsn, HashEmbedder(), settings, ListenerConfig(batch_size=40, batch_window=0.0)).run(drain=True)
        await asyncio.sleep(0.3)
    finally:
        await watcher.close()
    assert [(p["event"], len(p["jobs"])) for p in payloads] == [("queued", 40), ("processing", 40), ("done", 40)]
    event_ids = [job[3] for p in payloads for job in p["jobs"]]
    assert event_ids == sorted(set(event_ids)), "one id per job and state, increasing in delivery order"


async def test_failed_and_dead_events_say_why(conn, dsn, settings):
    embedder = HashEmbedder()
    embedder.poison_marker = "POISON"
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as url,
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", f"{url}/v1/events", params={"type": "course"}) as stream,
    ):
        await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('a POISON pill')")
        await drain(dsn, embedder, settings)
        await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('fine, but the provider is busy')")
        embedder.fail_next.append(RetryableError("provider overloaded, try later"))
        await drain(dsn, embedder, settings)
        await conn.execute("SELECT embedq.jobs_cancel(id) FROM embedq.jobs WHERE source_id = '2'")
        items = await read_sse(stream, until=lambda items: len(events(items)) == 7)
    assert [(event, source_id) for event, _, source_id in summary(items)] == [
        ("queued", "1"),
        ("processing", "1"),
        ("dead", "1"),
        ("queued", "2"),
        ("processing", "2"),
        ("failed", "2"),
        ("dead", "2"),
    ]
    errors = {(item.event, item.data["source_id"]): item.data.get("error") for item in events(items)}
    assert "POISON" in errors[("dead", "1")]
    assert errors[("failed", "2")] == "provider overloaded, try later"
    assert errors[("dead", "2")] == "cancelled by operator"
    assert errors[("queued", "1")] is None


async def test_a_client_resumes_after_a_dropped_connection_on_any_replica(conn, dsn, settings):
    embedder = HashEmbedder()
    course = {"type": "course"}
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as first,
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as second,
        httpx.AsyncClient(timeout=30) as http,
    ):
        async with http.stream("GET", f"{first}/v1/events", params=course) as stream:
            await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('seen live')")
            await drain(dsn, embedder, settings)
            before = await read_sse(stream, until=lambda items: len(events(items)) == 3)
        # the connection is gone; meanwhile two more rows are written and embedded
        async with http.stream("GET", f"{second}/v1/events", params=course) as watcher:
            await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('missed 1'), ('missed 2')")
            await drain(dsn, embedder, settings)
            missed = await read_sse(watcher, until=lambda items: len(events(items)) == 6)

        resume_from = last_id(events(before))
        for replica in (second, first):
            headers = {"Last-Event-ID": resume_from}
            async with http.stream("GET", f"{replica}/v1/events", params=course, headers=headers) as response:
                stream = SseStream(response)
                resumed = await stream.read(until=lambda items: len(events(items)) == 6)
                assert [(item.id, item.event, item.data) for item in events(resumed)] == [
                    (item.id, item.event, item.data) for item in events(missed)
                ], replica
                # then live, on the same stream
                await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('live again')")
                await conn.execute("SELECT embedq.jobs_ingest()")
                live = await stream.read(until=lambda items: len(events(items)) == 1)
            assert summary(live)[0][0] == "queued"
            assert int(events(live)[0].id) > int(events(resumed)[-1].id)

    assert summary(before) == [("queued", "course", "1"), ("processing", "course", "1"), ("done", "course", "1")]
    assert sorted(summary(missed)) == sorted(
        (event, "course", source_id) for event in ("queued", "processing", "done") for source_id in ("2", "3")
    )


async def test_a_last_event_id_outside_the_replay_window_asks_for_a_resync(conn, dsn, settings):
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=HashEmbedder()), lifespan="on") as url,
        httpx.AsyncClient(timeout=30) as http,
        http.stream("GET", f"{url}/v1/events", headers={"Last-Event-ID": "123456789"}) as stream,
    ):
        await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('after the resync')")
        await conn.execute("SELECT embedq.jobs_ingest()")
        items = await read_sse(stream, until=lambda items: len(events(items)) == 2)
    resync, queued = events(items)
    assert (resync.event, resync.id) == ("resync", None)
    assert "123456789" in resync.data["reason"]
    assert (queued.event, queued.data["source_id"]) == ("queued", "1")


async def test_a_stream_of_one_row_keeps_its_place_while_other_rows_change(conn, dsn, settings):
    """Events the client did not ask for still move its Last-Event-ID (an `id:` line without data),
    so after a reconnect it gets its row's events since, and no resync."""
    embedder = HashEmbedder()
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('watched')")
    await drain(dsn, embedder, settings)
    mine = {"type": "course", "source_id": "1"}
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        async with http.stream("GET", f"{url}/v1/events", params=mine) as stream:
            await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'p' || g FROM generate_series(1, 5) g")
            await drain(dsn, embedder, settings)
            items = await read_sse(stream, until=lambda items: any(item.is_marker for item in items))
        assert events(items) == []
        place = last_id(items)
        await conn.execute("UPDATE embedq_sample.courses SET title = 'watched, edited' WHERE id = 1")
        await drain(dsn, embedder, settings)
        async with http.stream("GET", f"{url}/v1/events", params=mine, headers={"Last-Event-ID": place}) as stream:
            resumed = await read_sse(stream, until=lambda items: len(events(items)) == 3)
    assert summary(resumed) == [("queued", "course", "1"), ("processing", "course", "1"), ("done", "course", "1")]
    assert int(events(resumed)[0].id) > int(place)


async def test_metrics_parse_and_show_the_queue(conn, dsn, settings):
    from prometheus_client.parser import text_string_to_metric_families

    embedder = HashEmbedder()
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'c' || g FROM generate_series(1, 7) g")
    await Listener(dsn, embedder, settings, ListenerConfig(batch_window=0.0)).run(drain=True)
    await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'p' || g FROM generate_series(1, 3) g")
    await conn.execute("SELECT embedq.jobs_ingest()")
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as url,
        httpx.AsyncClient() as http,
    ):
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    depth = {(s.labels["status"], s.labels["priority"]): s.value for s in families["embedq_jobs"].samples}
    assert depth[("done", "2")] == 7 and depth[("pending", "4")] == 3
    finished = {
        s.labels["outcome"]: s.value
        for s in families["embedq_jobs_finished"].samples
        if s.name == "embedq_jobs_finished_total"
    }
    assert finished["done"] >= 7  # this process's counter (other tests in the session add to it)
    assert families["embedq_oldest_pending_seconds"].samples[0].value >= 0
    assert any(
        s.name == "embedq_processing_seconds_count" and s.value >= 1
        for s in families["embedq_processing_seconds"].samples
    )
    assert "embedq_provider_seconds" in families and "embedq_qstash_breaker_open" in families
    assert "embedq_events_dropped" in families
