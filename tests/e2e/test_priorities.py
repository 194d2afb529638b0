"""Priorities hold under a backlog, in both modes: a priority-2 row written while a priority-9
backlog drains is embedded before most of the backlog; processed by the listener (local mode),
or published by it through the QStash-compatible server to the webhook over real HTTP.

The backlog lives in its own table, registered at priority 9; the urgent row is a sample course
(priority 2)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from embedq import metrics
from embedq.listener import Listener, ListenerConfig
from embedq.settings import Settings
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import free_port, serve_app
from tests.qstash_server import QStashServer

BACKLOG = 3000


async def write_backlog(conn, rows: int) -> None:
    await conn.execute(
        "CREATE TABLE public.backlog_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text)"
    )
    await conn.execute("SELECT embedq.register_source('note', 'public.backlog_notes', ARRAY['body'], 9)")
    await conn.execute(
        "INSERT INTO public.backlog_notes (body) SELECT 'backlog note ' || g FROM generate_series(1, $1) g", rows
    )


async def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        await asyncio.sleep(0.02)


async def done_notes(conn) -> int:
    return await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE content_type = 'note' AND status = 'done'")


@contextlib.asynccontextmanager
async def running_listener(settings: Settings, embedder: HashEmbedder) -> AsyncIterator[Listener]:
    config = ListenerConfig(batch_size=20, batch_window=0.0, poll_interval=0.5)
    listener = Listener(settings.database_url or "", embedder, settings, config)
    task = asyncio.create_task(listener.run())
    try:
        yield listener
    finally:
        listener.stop()
        await task


@contextlib.asynccontextmanager
async def local_mode(settings: Settings) -> AsyncIterator[Settings]:
    yield settings


@contextlib.asynccontextmanager
async def qstash_mode(settings: Settings) -> AsyncIterator[Settings]:
    """The QStash-compatible server and a webhook on real HTTP; the backlog's tier may have 200
    jobs in flight, delivered two messages at a time."""
    async with QStashServer(time_scale=0.001) as qstash:
        port = free_port()
        env = {**qstash.env, "EMBEDQ_WEBHOOK_URL": f"http://127.0.0.1:{port}/v1/jobs"}
        qstash_settings = dataclasses.replace(
            Settings.from_env(env, database_url=settings.database_url),
            dispatch_max_in_flight=200,
            jobs_per_message=20,
            qstash_parallelism=2,
        )
        app = create_app(qstash_settings, embedder=HashEmbedder())
        async with serve_app(app, port=port, lifespan="on"):
            yield qstash_settings


@pytest.mark.parametrize("mode", [local_mode, qstash_mode], ids=["local", "qstash"])
async def test_an_urgent_row_written_behind_a_backlog_is_embedded_before_most_of_it(conn, settings, mode):
    await write_backlog(conn, BACKLOG)
    observed_before = metrics.REGISTRY.get_sample_value("embedq_write_to_vector_seconds_count", {"priority": "2"})

    async with mode(settings) as mode_settings, running_listener(mode_settings, HashEmbedder()):
        await wait_for(lambda: _at_least(conn, 100))  # the backlog is draining
        course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('urgent') RETURNING id")

        async def course_done() -> bool:
            return await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM embedq.jobs WHERE content_type = 'course' AND source_id = $1 "
                "AND status = 'done')",
                str(course),
            )

        await wait_for(course_done)

    notes_done_first = await conn.fetchval(
        "SELECT count(*) FROM embedq.jobs n, embedq.jobs c WHERE n.content_type = 'note' AND n.status = 'done' "
        "AND c.content_type = 'course' AND n.finished_at < c.finished_at"
    )
    assert notes_done_first < BACKLOG / 2, f"{notes_done_first} of {BACKLOG} backlog rows were embedded first"
    assert await conn.fetchval(
        "SELECT count(*) FROM embedq.embeddings WHERE content_type = 'course' AND source_id = $1", str(course)
    )
    # embedq_write_to_vector_seconds{priority="2"}: the listener or the webhook, where the job ended
    observed = metrics.REGISTRY.get_sample_value("embedq_write_to_vector_seconds_count", {"priority": "2"})
    assert (observed or 0) == (observed_before or 0) + 1


async def _at_least(conn, n: int) -> bool:
    return await done_notes(conn) >= n
