"""The two recurring tasks: daily maintenance and a weekly retry of failed jobs.

With QStash, `embedq up` upserts two QStash schedules that call the signed POST
/v1/maintenance (any webhook replica answers; embedq.qstash.schedules). Without QStash, the same
runs on a local timer (here): one periodic service per schedule.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from embedq.maintenance import run_maintenance
from embedq.periodic import PeriodicService


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


class ScheduledMaintenance(PeriodicService):
    """One Recurring on a local timer; a failed run is logged and the next period tries again."""

    action = "maintenance"

    def __init__(self, pool: asyncpg.Pool, recurring: Recurring, first_run_delay: float = FIRST_RUN_DELAY_SECONDS):
        super().__init__(
            recurring.every_seconds, first_delay=first_run_delay if recurring.at_start else recurring.every_seconds
        )
        self.pool = pool
        self.recurring = recurring

    async def run_once(self) -> bool:
        async with self.pool.acquire() as conn:
            await run_maintenance(conn, retry_all_failed=self.recurring.task == "retry_failed")
        return False


async def run_local_schedules(
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    schedules: tuple[Recurring, ...] = SCHEDULES,
    first_run_delay: float = FIRST_RUN_DELAY_SECONDS,
) -> None:
    await asyncio.gather(*(ScheduledMaintenance(pool, item, first_run_delay).run(stop) for item in schedules))
