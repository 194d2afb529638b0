"""Maintenance: prune what is no longer needed, requeue failures nobody picked up.
The same code runs behind `embedq maintenance`, the signed POST /v1/maintenance (QStash
schedules) and the local timer of `embedq up`."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import asyncpg

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

    def as_json(self) -> dict:
        return asdict(self)


async def run_maintenance(
    conn: asyncpg.Connection,
    *,
    done_keep_days: int = DONE_JOBS_KEEP_DAYS,
    search_keep_days: int = SEARCH_LOG_KEEP_DAYS,
    retry_all_failed: bool = False,
) -> Report:
    """retry_all_failed: requeue every failed job now, not only the overlooked ones (the weekly
    schedule does this)."""
    report = Report()
    async with conn.transaction():
        report.pruned_jobs = await conn.fetchval(query("maintenance_prune_jobs"), done_keep_days)
        report.pruned_searches = await conn.fetchval(query("maintenance_prune_search_log"), search_keep_days)
        stale_after = -1e9 if retry_all_failed else float(STALE_FAILED_SECONDS)
        stale = [r["id"] for r in await conn.fetch(query("maintenance_stale_failed_ids"), stale_after)]
        if stale:
            report.requeued_failed = len(await conn.fetch(query("jobs_requeue"), stale))
    logger.info("maintenance done", extra={"action": "maintenance", **report.as_json()})
    return report
