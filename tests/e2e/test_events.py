"""GET /v1/events: an application sees "embedding ready" for its row without polling."""

from __future__ import annotations

import asyncio
import json

import httpx

from embedq.listener import Listener, ListenerConfig
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import serve_app


async def read_events(response: httpx.Response, wanted: int) -> list[tuple[str, dict]]:
    events: list[tuple[str, dict]] = []
    name = None
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and name is not None:
            events.append((name, json.loads(line.split(":", 1)[1])))
            if len(events) == wanted:
                return events
    return events


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
            reader = asyncio.create_task(read_events(stream, wanted=2))
            await asyncio.sleep(0.3)  # subscribed
            mine = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('mine') RETURNING id")
            await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('another type')")
            await Listener(dsn, embedder, settings, ListenerConfig(batch_window=0.0)).run(drain=True)
            events = await asyncio.wait_for(reader, 20)
    assert (other, mine) == (1, 2)
    assert [(name, e["content_type"], e["source_id"]) for name, e in events] == [
        ("queued", "course", "2"),
        ("done", "course", "2"),
    ]
    assert events[1][1]["job_id"] == events[0][1]["job_id"]


async def test_a_processing_transaction_sends_one_notification(conn, dsn, settings):
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
    assert [(p["event"], len(p["jobs"])) for p in payloads] == [("queued", 40), ("done", 40)]


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
