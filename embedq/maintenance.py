"""Maintenance: prune what is no longer needed, requeue failures nobody picked up.
The same code runs behind `embedq maintenance`, the signed POST /v1/maintenance (QStash
schedules) and the local timers of `embedq listen` and `embedq up` (embedq.schedules).

The weekly retry (retry_all_failed) also requeues the dead jobs whose cause may have passed by
itself (embedq.jobs.TRANSIENT_CAUSES: QStash could not deliver them, the provider or the database
was away, a rate limit), never those that need a change first (a text the provider refuses,
wrong dimensions, a cancelled job, an unregistered type, ...)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import asyncpg

from embedq.jobs import TRANSIENT_CAUSES
from embedq.queries import query

logger = logging.getLogger(__name__)

DONE_JOBS_KEEP_DAYS = 7
SEARCH_LOG_KEEP_DAYS = 30
#: a failed job whose retry time passed this long ago has been overlooked (no listener ran)
STALE_FAILED_SECONDS = 3600


@dataclass
class Report:
    pruned_jobs: int = 0
    pruned_searches: int = 0
    requeued_failed: int = 0
    #: dead jobs of a transient cause, requeued by the weekly retry
    requeued_dead: int = 0
    #: rows of workers unseen for a day (killed processes never forget themselves)
    pruned_workers: int = 0

    def as_json(self) -> dict:
        return asdict(self)


async def run_maintenance(
    conn: asyncpg.Connection,
    *,
    done_keep_days: int = DONE_JOBS_KEEP_DAYS,
    search_keep_days: int = SEARCH_LOG_KEEP_DAYS,
    retry_all_failed: bool = False,
) -> Report:
    """retry_all_failed: requeue every failed job now, not only the overlooked ones, and the dead
    jobs of transient causes (the weekly schedule does this)."""
    report = Report()
    async with conn.transaction():
        report.pruned_jobs = await conn.fetchval(query("maintenance_prune_jobs"), done_keep_days)
        report.pruned_searches = await conn.fetchval(query("maintenance_prune_search_log"), search_keep_days)
        report.pruned_workers = await conn.fetchval(query("workers_prune"))
        stale_after = -1e9 if retry_all_failed else float(STALE_FAILED_SECONDS)
        stale = [r["id"] for r in await conn.fetch(query("maintenance_stale_failed_ids"), stale_after)]
        if stale:
            report.requeued_failed = len(await conn.fetch(query("jobs_requeue"), stale))
        if retry_all_failed:
            causes = sorted(cause.value for cause in TRANSIENT_CAUSES)
            dead = [r["id"] for r in await conn.fetch(query("maintenance_retryable_dead_ids"), causes)]
            if dead:
                report.requeued_dead = len(await conn.fetch(query("jobs_requeue"), dead))
    logger.info("maintenance done", extra={"action": "maintenance", **report.as_json()})
    return report
