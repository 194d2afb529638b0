"""Jobs and models in SQL: a row change queues a job for the active model and one for each model
being filled; a listener claims only the jobs of the model it embeds with."""

from __future__ import annotations

import pytest


@pytest.fixture
async def three_models(conn):
    for name in ("model-a", "model-b", "model-c"):
        await conn.execute("SELECT embedq.model_ensure($1, 'test', 8)", name)  # model-a, first, is active
    await conn.execute("UPDATE embedq.models SET maintained = true WHERE name = 'model-b'")


async def claim(conn, model: str) -> list[tuple[str, str | None]]:
    rows = await conn.fetch(
        "SELECT source_id, model FROM embedq.jobs_claim('t', 100, '1 minute', NULL, 'processing', $1)", model
    )
    return sorted((r["source_id"], r["model"]) for r in rows)


async def test_a_row_change_queues_jobs_for_the_active_model_and_the_filling_ones(conn, three_models):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one'), ('two')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    jobs = await conn.fetch("SELECT source_id, model FROM embedq.jobs ORDER BY source_id, model NULLS FIRST")
    assert [tuple(j) for j in jobs] == [("1", None), ("1", "model-b"), ("2", None), ("2", "model-b")]

    await conn.execute("UPDATE embedq_sample.posts SET title = 'one, again' WHERE id = 1")
    await conn.execute("SELECT embedq.jobs_ingest()")
    assert await conn.fetchval("SELECT count(*) FROM embedq.jobs") == 4  # coalesced per model


async def test_each_listener_claims_only_its_models_jobs(conn, three_models):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one')")
    assert await claim(conn, "model-c") == []
    assert await claim(conn, "model-b") == [("1", "model-b")]
    await conn.execute(
        "SELECT embedq.jobs_complete(array_agg(id), array_agg(attempts)) FROM embedq.jobs WHERE status = 'processing'"
    )
    assert await claim(conn, "model-a") == [("1", None)]


async def test_a_row_is_embedded_by_one_model_at_a_time(conn, three_models):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one')")
    assert await claim(conn, "model-b") == [("1", "model-b")]
    assert await claim(conn, "model-a") == []  # waits for model-b's job of the same row


async def test_activation_hands_the_active_models_jobs_over(conn, three_models):
    await conn.execute("SELECT embedq.model_activate('model-b')")
    assert await conn.fetchval("SELECT maintained FROM embedq.models WHERE name = 'model-b'") is False
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one')")
    assert await claim(conn, "model-a") == []  # no longer active, not being filled
    assert await claim(conn, "model-b") == [("1", None)]
    assert await conn.fetchval("SELECT count(*) FROM embedq.jobs") == 1


async def test_requeue_merges_into_the_pending_job_of_the_same_model_only(conn, three_models):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one')")
    await claim(conn, "model-b")
    await conn.execute(
        "SELECT embedq.jobs_complete(array_agg(id), array_agg(attempts)) FROM embedq.jobs WHERE status = 'processing'"
    )
    done_b = await conn.fetchval("SELECT id FROM embedq.jobs WHERE model = 'model-b'")
    requeued = await conn.fetchrow("SELECT * FROM embedq.jobs_requeue(ARRAY[$1::bigint])", done_b)
    assert (requeued["status"], requeued["merged_into"]) == ("pending", None)  # the pending job is model-a's
