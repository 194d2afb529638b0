"""Maintenance prunes exactly what it should and requeues only overlooked failures."""

from __future__ import annotations

import asyncio
import logging

from embedq import db
from embedq.jobs import TRANSIENT_CAUSES, FailureCause
from embedq.maintenance import run_maintenance
from embedq.schedules import Recurring, run_local_schedules


async def make_job(conn, source_id: str, status: str, age: str, cause: str | None = None) -> int:
    finished = "now() - $2::text::interval" if status in ("done", "dead") else "NULL"
    return await conn.fetchval(
        f"INSERT INTO embedq.jobs (content_type, source_id, status, finished_at, updated_at, run_after, cause) "
        f"VALUES ('course', $1, $3::embedq.job_status, {finished}, now() - $2::text::interval, "
        "now() - $2::text::interval, $4::embedq.failure_cause) "
        "RETURNING id",
        source_id,
        age,
        status,
        cause,
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

    assert report.as_json() == {
        "pruned_jobs": 1,
        "pruned_searches": 1,
        "requeued_failed": 1,
        "requeued_dead": 0,  # only the weekly retry requeues dead jobs
        "pruned_workers": 0,
    }
    remaining = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status::text FROM embedq.jobs")}
    assert old_done not in remaining
    assert remaining == {recent_done: "done", old_dead: "dead", overlooked: "pending", waiting: "failed"}
    assert [r[0] for r in await conn.fetch("SELECT query FROM embedq.search_log")] == ["recent"]


async def test_weekly_retry_requeues_every_failed_job_and_the_dead_ones_that_can_succeed(conn):
    waiting = await make_job(conn, "5", "failed", "10 minutes")
    transient = {cause: await make_job(conn, f"t-{cause}", "dead", "3 days", cause) for cause in TRANSIENT_CAUSES}
    permanent = {
        cause: await make_job(conn, f"p-{cause}", "dead", "3 days", cause)
        for cause in set(FailureCause) - TRANSIENT_CAUSES
    }
    unknown = await make_job(conn, "dead before causes were recorded", "dead", "3 days")

    report = await run_maintenance(conn, retry_all_failed=True)

    assert (report.requeued_failed, report.requeued_dead) == (1, len(TRANSIENT_CAUSES))
    statuses = dict(await conn.fetch("SELECT id, status::text FROM embedq.jobs"))
    assert statuses[waiting] == "pending"
    assert {statuses[i] for i in transient.values()} == {"pending"}
    assert {statuses[i] for i in (*permanent.values(), unknown)} == {"dead"}
    assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE cause IS NOT NULL AND status <> 'dead'") == 0


async def test_maintenance_forgets_workers_unseen_for_a_day(conn):
    await conn.execute(
        "INSERT INTO embedq.workers (name, mode, seen_at) VALUES ('killed', 'local', now() - interval '25 hours'), "
        "('alive', 'local', now())"
    )
    assert (await run_maintenance(conn)).pruned_workers == 1
    assert [r[0] for r in await conn.fetch("SELECT name FROM embedq.workers")] == ["alive"]


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


async def test_processes_share_one_schedule_and_a_restart_resets_nothing(conn, dsn, caplog):
    caplog.set_level(logging.INFO, logger="embedq.maintenance")
    daily = (Recurring("daily", "", "maintenance", every_seconds=3600, at_start=True),)
    pools = [await db.create_pool(dsn, "embedq-tests", min_size=1, max_size=1) for _ in range(3)]
    stop = asyncio.Event()
    timers: list[asyncio.Task] = []
    try:
        # three listeners start at once, each with its timer: the task runs once
        timers += [asyncio.create_task(run_local_schedules(pool, stop, daily, first_run_delay=0)) for pool in pools]
        async with asyncio.timeout(10):
            while not await conn.fetchval("SELECT count(*) FROM embedq.schedule_runs WHERE task = 'daily'"):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        first_run = await conn.fetchval("SELECT last_run_at FROM embedq.schedule_runs WHERE task = 'daily'")
        # ...and a restart within the period does not run it again
        timers.append(asyncio.create_task(run_local_schedules(pools[0], stop, daily, first_run_delay=0)))
        await asyncio.sleep(0.5)
        assert await conn.fetchval("SELECT last_run_at FROM embedq.schedule_runs WHERE task = 'daily'") == first_run
        assert [r.action for r in caplog.records if r.getMessage() == "maintenance done"] == ["maintenance"]
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*timers), 5)
        for pool in pools:
            await pool.close()
