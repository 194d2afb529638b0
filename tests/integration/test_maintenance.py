"""Maintenance prunes exactly what it should and requeues only overlooked failures."""

from __future__ import annotations

import asyncio

from embedq import db
from embedq.maintenance import run_maintenance
from embedq.schedules import Recurring, run_local_schedules


async def make_job(conn, source_id: str, status: str, age: str) -> int:
    finished = "now() - $2::text::interval" if status in ("done", "dead") else "NULL"
    return await conn.fetchval(
        f"INSERT INTO embedq.jobs (content_type, source_id, status, finished_at, updated_at, run_after) "
        f"VALUES ('course', $1, $3::embedq.job_status, {finished}, now() - $2::text::interval, "
        "now() - $2::text::interval) "
        "RETURNING id",
        source_id,
        age,
        status,
    )


async def test_maintenance_prunes_and_requeues_exactly_what_it_should(conn):
    old_done = await make_job(conn, "1", "done", "8 days")
    recent_done = await make_job(conn, "2", "done", "6 days")
    old_dead = await make_job(conn, "3", "dead", "30 days")  # dead jobs stay for replay
    overlooked = await make_job(conn, "4", "failed", "2 hours")
    waiting = await make_job(conn, "5", "failed", "10 minutes")
    await conn.execute(
        "INSERT INTO embedq.search_log (query, model, match_count, result_count, duration_ms, origin, created_at) "
        "VALUES ('old', 'm', 10, 1, 1, 'cli', now() - interval '31 days'), "
        "       ('recent', 'm', 10, 1, 1, 'cli', now() - interval '29 days')"
    )

    report = await run_maintenance(conn)

    assert report.as_json() == {"pruned_jobs": 1, "pruned_searches": 1, "requeued_failed": 1}
    remaining = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status::text FROM embedq.jobs")}
    assert old_done not in remaining
    assert remaining == {recent_done: "done", old_dead: "dead", overlooked: "pending", waiting: "failed"}
    assert [r[0] for r in await conn.fetch("SELECT query FROM embedq.search_log")] == ["recent"]


async def test_weekly_retry_requeues_every_failed_job(conn):
    waiting = await make_job(conn, "5", "failed", "10 minutes")
    report = await run_maintenance(conn, retry_all_failed=True)
    assert report.requeued_failed == 1
    assert await conn.fetchval("SELECT status::text FROM embedq.jobs WHERE id = $1", waiting) == "pending"


async def test_the_local_timer_runs_maintenance_soon_after_start_then_every_period(conn, dsn):
    old_done = await make_job(conn, "1", "done", "8 days")
    failed = await make_job(conn, "2", "failed", "10 minutes")
    schedules = (
        Recurring("maintenance", "", "maintenance", every_seconds=0.3, at_start=True),
        Recurring("retry", "", "retry_failed", every_seconds=3600, at_start=False),
    )
    pool = await db.create_pool(dsn, "embedq-tests", min_size=1, max_size=2)
    stop = asyncio.Event()
    timer = asyncio.create_task(run_local_schedules(pool, stop, schedules, first_run_delay=0.05))
    try:
        async with asyncio.timeout(10):
            while await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE id = $1", old_done):
                await asyncio.sleep(0.05)
            later_done = await make_job(conn, "3", "done", "9 days")  # pruned by the next period
            while await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE id = $1", later_done):
                await asyncio.sleep(0.05)
        # the weekly retry did not run at start: the failed job still waits out its backoff
        assert await conn.fetchval("SELECT status::text FROM embedq.jobs WHERE id = $1", failed) == "failed"
    finally:
        stop.set()
        await asyncio.wait_for(timer, 5)
        await pool.close()
