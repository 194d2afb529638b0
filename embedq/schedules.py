"""The two recurring tasks: daily maintenance and a weekly retry of failed jobs.

With QStash, `embedq up` upserts two QStash schedules that call the signed POST
/v1/maintenance (any webhook replica answers; embedq.qstash.schedules). Without QStash, the same
runs on a local timer (here).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from embedq.db import CONNECTION_ERRORS
from embedq.maintenance import run_maintenance

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recurring:
    schedule_id: str
    cron: str
    task: str
    every_seconds: float
    #: the local timer also runs it shortly after a start: a process restarted more often than
    #: every_seconds (daily deploys) would otherwise never run it
    at_start: bool


SCHEDULES = (
    Recurring("embedq-maintenance-daily", "17 3 * * *", "maintenance", 86_400, at_start=True),
    # not at start: it requeues every failed job, cutting their backoff short at each restart
    Recurring("embedq-retry-failed-weekly", "47 3 * * 0", "retry_failed", 7 * 86_400, at_start=False),
)
FIRST_RUN_DELAY_SECONDS = 60.0


async def run_local_schedules(
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    schedules: tuple[Recurring, ...] = SCHEDULES,
    first_run_delay: float = FIRST_RUN_DELAY_SECONDS,
) -> None:
    loop = asyncio.get_running_loop()
    due = {item.task: loop.time() + (first_run_delay if item.at_start else item.every_seconds) for item in schedules}
    while not stop.is_set():
        next_due = min(due.values())
        try:
            await asyncio.wait_for(stop.wait(), max(next_due - loop.time(), 0))
            return
        except TimeoutError:
            pass
        for item in schedules:
            if due[item.task] <= loop.time():
                due[item.task] = loop.time() + item.every_seconds
                try:
                    async with pool.acquire() as conn:
                        await run_maintenance(conn, retry_all_failed=item.task == "retry_failed")
                except (*CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
                    # the next period tries again; the timer must outlive one bad run
                    logger.warning("scheduled maintenance skipped", extra={"action": "maintenance", "error": str(exc)})
