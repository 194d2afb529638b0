"""The openai provider through the whole pipeline, against a local OpenAI-compatible server."""

from __future__ import annotations

import dataclasses

import pytest

from embedq.listener import Listener, ListenerConfig
from embedq.providers.openai import OpenAIEmbedder
from embedq.settings import Settings
from tests.fakes.openai_server import FakeOpenAIServer, fake_vector

DIMENSIONS = 64


@pytest.fixture
async def server():
    async with FakeOpenAIServer(dimensions=DIMENSIONS, api_key="sk-test") as fake:
        yield fake


def openai_settings(settings: Settings, server: FakeOpenAIServer, **overrides) -> Settings:
    env = {
        "EMBEDQ_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": server.base_url,
        "EMBEDQ_DIMENSIONS": str(DIMENSIONS),
        "EMBEDQ_OPENAI_MAX_RETRIES": "2",
    }
    return dataclasses.replace(Settings.from_env(env, database_url=settings.database_url), **overrides)


async def drain(dsn: str, settings: Settings) -> tuple:
    embedder = OpenAIEmbedder.from_settings(settings)
    try:
        totals = await Listener(
            dsn, embedder, settings, ListenerConfig(batch_size=100, batch_window=0.0, poll_interval=0.2)
        ).run(drain=True)
    finally:
        await embedder.aclose()
    return totals


async def test_rows_become_the_servers_vectors_in_batches(conn, dsn, settings, server):
    await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'post ' || g FROM generate_series(1, 250) g")
    totals = await drain(dsn, openai_settings(settings, server, openai_batch_size=40))
    assert totals.done == 250
    assert max(server.batch_sizes) == 40 and sum(server.batch_sizes) == 250
    row = await conn.fetchrow("SELECT content, embedding FROM embedq.embeddings WHERE source_id = '7'")
    assert list(row["embedding"].to_numpy()) == pytest.approx(list(fake_vector(row["content"], DIMENSIONS)), abs=1e-6)


async def test_a_429_with_retry_after_is_retried_without_losing_the_batch(conn, dsn, settings, server):
    await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'post ' || g FROM generate_series(1, 30) g")
    server.fail_next(2, status=429, retry_after=0.05)
    totals = await drain(dsn, openai_settings(settings, server))
    assert (totals.done, totals.failed, totals.dead) == (30, 0, 0)
    assert server.batch_sizes == [30, 30, 30]  # the same batch, twice refused, then accepted whole
    statuses = [s.status for s in server.seen]
    assert statuses == [429, 429, 200]


async def test_a_dimension_mismatch_is_dead_and_nothing_is_written(conn, dsn, settings, server):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one'), ('two')")
    server.wrong_dimensions = DIMENSIONS // 2
    totals = await drain(dsn, openai_settings(settings, server))
    assert (totals.done, totals.dead) == (0, 2)
    errors = await conn.fetch("SELECT status::text, last_error FROM embedq.jobs")
    assert {e["status"] for e in errors} == {"dead"}
    assert all(str(DIMENSIONS // 2) in e["last_error"] for e in errors)
    assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 0


async def test_a_wrong_api_key_is_a_permanent_error(conn, dsn, settings, server):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one')")
    server.api_key = "sk-other"
    totals = await drain(dsn, openai_settings(settings, server))
    assert totals.dead == 1
    assert "401" in await conn.fetchval("SELECT last_error FROM embedq.jobs")


async def test_persistent_5xx_backs_off_as_failed(conn, dsn, settings, server):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one')")
    server.failure_rate = 1.0
    server.failure_statuses = (503,)
    totals = await drain(dsn, openai_settings(settings, server))
    assert totals.failed == 1
    job = await conn.fetchrow("SELECT status::text, attempts, run_after > now() AS later FROM embedq.jobs")
    assert tuple(job) == ("failed", 1, True)


async def test_a_provider_error_holding_a_nul_byte_is_still_recorded(conn, dsn, settings, server):
    # PostgreSQL text cannot hold NUL: the error must be stored anyway, not crash the listener
    server.verbatim_response = (
        400,
        "application/json",
        '{"error": {"message": "bad\\u0000input", "type": "invalid_request_error"}}',
    )
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('rejected')")
    totals = await drain(dsn, openai_settings(settings, server))
    assert totals.dead == 1
    assert "bad" in await conn.fetchval("SELECT last_error FROM embedq.jobs")
