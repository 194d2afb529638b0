"""The operations the CLI, the Python API and the webhook's admin API share (embedq.operations,
embedq.models), called directly on the real database (the one-job operations also on the
in-memory store): their batches, their progress reports and the errors a caller can cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from embedq import db, models, operations
from embedq.errors import InvalidInput, NotFound
from embedq.jobs import JobStatus
from embedq.settings import Settings
from embedq.store import JobStore, Source
from embedq.testing import InMemoryJobStore


@pytest.fixture
async def store(dsn):
    pool = await db.create_pool(dsn, "embedq-tests", max_size=2)
    yield JobStore(pool)
    await pool.close()


async def queued_courses(conn, count: int) -> list[int]:
    await conn.execute(
        "INSERT INTO embedq_sample.courses (title) SELECT 'course ' || n FROM generate_series(1, $1) n", count
    )
    await conn.execute("SELECT embedq.jobs_ingest()")
    return [r["id"] for r in await conn.fetch("SELECT id FROM embedq.jobs ORDER BY id")]


async def end_as(conn, job_ids: list[int], status: str) -> None:
    await conn.execute(
        "UPDATE embedq.jobs SET status = $2::embedq.job_status, last_error = 'x',"
        " finished_at = CASE WHEN $2 = 'failed' THEN NULL ELSE now() END WHERE id = ANY ($1::bigint[])",
        job_ids,
        status,
    )


async def cancel_then_retry(store, job_id: int) -> None:
    cancelled = await operations.cancel_job(store, job_id)
    assert (cancelled.status, cancelled.last_error) == (JobStatus.DEAD, "cancelled by operator")
    with pytest.raises(InvalidInput, match=f"job {job_id} is already dead"):
        await operations.cancel_job(store, job_id)

    retried = await operations.retry_job(store, job_id)
    assert (retried.job.status, retried.job.attempts, retried.merged_into) == (JobStatus.PENDING, 0, None)
    with pytest.raises(InvalidInput, match="only failed, dead or done jobs can be retried"):
        await operations.retry_job(store, job_id)
    with pytest.raises(NotFound, match="job 424242 does not exist"):
        await operations.get_job(store, 424242)


async def test_cancel_then_retry_one_job(conn, store):
    (job_id,) = await queued_courses(conn, 1)
    await cancel_then_retry(store, job_id)


async def test_cancel_then_retry_one_job_in_memory():
    memory = InMemoryJobStore([Source("course", "courses", "id", ("title",), 2)])
    memory.write_row("course", {"title": "a"})
    await memory.ingest()
    (job_id,) = memory.jobs
    await cancel_then_retry(memory, job_id)


async def test_retrying_a_job_whose_row_has_a_pending_job_merges_into_it(conn, store):
    (first,) = await queued_courses(conn, 1)
    await end_as(conn, [first], "dead")
    await conn.execute("UPDATE embedq_sample.courses SET title = 'edited'")
    await conn.execute("SELECT embedq.jobs_ingest()")
    pending = await conn.fetchval("SELECT id FROM embedq.jobs WHERE status = 'pending'")
    retried = await operations.retry_job(store, first)
    assert retried.merged_into == pending and retried.job.status is JobStatus.DONE


async def test_replay_chooses_by_filter_and_requeues_in_batches_with_progress(conn, store):
    jobs = await queued_courses(conn, 5)
    await end_as(conn, jobs[:3], "dead")
    await end_as(conn, jobs[3:4], "failed")
    await end_as(conn, jobs[4:], "done")

    plan = await operations.plan_replay(conn, operations.ReplayFilter.build())
    assert plan.job_ids == jobs[:4]  # failed and dead; done only when asked for
    assert plan.summary() == [
        {"content_type": "course", "status": "dead", "jobs": 3},
        {"content_type": "course", "status": "failed", "jobs": 1},
    ]
    assert (await operations.plan_replay(conn, operations.ReplayFilter.build(job_ids=[jobs[4]]))).job_ids == [jobs[4]]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert (await operations.plan_replay(conn, operations.ReplayFilter.build(since=later))).job_ids == []
    assert (await operations.plan_replay(conn, operations.ReplayFilter.build(content_types=["post"]))).job_ids == []

    reports: list[tuple[int, int | None]] = []
    replayed = await operations.replay(store, plan.job_ids, lambda done, total: reports.append((done, total)), batch=3)
    assert (replayed.replayed, replayed.merged) == (4, 0)
    assert reports == [(3, 4), (4, 4)]
    statuses = await conn.fetch("SELECT status::text FROM embedq.jobs WHERE id = ANY ($1::bigint[])", jobs[:4])
    assert {r[0] for r in statuses} == {"pending"}


@pytest.mark.parametrize(
    ("statuses", "fragment"),
    [(["pending"], "not pending"), (["", " "], "not nothing"), (["failed", "bogus"], "not bogus")],
)
def test_a_replay_filter_takes_only_ended_statuses(statuses, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        operations.ReplayFilter.build(statuses=statuses)


def test_instants_without_an_offset_are_utc():
    assert operations.parse_instant("2026-01-02", "--since") == datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="--until 'soon' is not an ISO date"):
        operations.parse_instant("soon", "--until")


async def test_backfill_walks_the_keys_in_batches_and_reports_progress(conn):
    await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'post ' || n FROM generate_series(1, 7) n")
    await conn.execute("DELETE FROM embedq.job_inbox")
    await conn.execute("ANALYZE embedq_sample.posts")
    reports: list[tuple[int, int | None]] = []
    done = await operations.backfill(conn, "post", progress=lambda n, total: reports.append((n, total)), batch=3)
    assert done.as_json() == {"content_type": "post", "queued": 7, "model": None}
    assert reports == [(0, 7), (3, 7), (6, 7), (7, 7)]
    assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE priority = 9") == 7

    with pytest.raises(InvalidInput, match="unknown content type 'nope'"):
        await operations.backfill(conn, "nope")
    with pytest.raises(InvalidInput, match="priority must be between 1 and 9"):
        await operations.backfill(conn, "post", priority=0)


async def test_models_fill_activate_and_drop(conn):
    active = await models.ensure_model(conn, "model-a", "test", 8)
    assert active.active
    settings = Settings.from_env({}, database_url="postgresql://unused/db")
    with pytest.raises(NotFound, match="model 'model-b' is not known"):
        await models.start_filling(conn, "model-b", settings)
    await models.ensure_model(conn, "model-b", "test", 8)
    assert await models.start_filling(conn, "model-a") is None  # the active one: jobs name no model
    assert await models.start_filling(conn, "model-b") == "model-b"
    assert [(m.name, m.state) for m in await models.list_models(conn)] == [
        ("model-a", "active"),
        ("model-b", "filling"),
    ]

    with pytest.raises(InvalidInput, match="'model-a' is the active one"):
        await models.check_droppable(conn, "model-a")
    with pytest.raises(NotFound, match="model 'model-c' is not known"):
        await models.activate_model(conn, "model-c")

    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    activated = await models.activate_model(conn, "model-b")
    assert (activated.model.name, activated.queued) == ("model-b", 1)
    dropped = await models.drop_model(conn, "model-a")
    assert (dropped.vectors, dropped.jobs) == (0, 0)
    assert [m.name for m in await models.list_models(conn)] == ["model-b"]
    with pytest.raises(NotFound, match="model 'model-a' is not known"):
        await models.drop_model(conn, "model-a")
