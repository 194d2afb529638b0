"""The two recurring tasks: daily maintenance and a weekly retry (failed jobs, and dead jobs of a
transient cause: embedq.maintenance).

With QStash, `embedq up` and `embedq listen` upsert two QStash schedules that call the signed
POST /v1/maintenance (any webhook replica answers; embedq.qstash.schedules). Without QStash, the
same runs on a local timer (here), in every listener and in `embedq up`. The last run of each
task is recorded in the database (embedq.schedule_runs), whoever ran it: any number of processes
share one schedule (the one that finds a task due runs it; the others find it done), and a
restart resets nothing, so a process restarted daily still runs the weekly retry weekly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from embedq.maintenance import run_maintenance
from embedq.periodic import PeriodicService
from embedq.queries import query


@dataclass(frozen=True)
class Recurring:
    schedule_id: str
    cron: str
    task: str
    every_seconds: float
    #: whether a task never run before runs at the first look (else one period after it): the
    #: weekly retry cuts the backoff of every failed job short, which a first start should not do
    at_start: bool


SCHEDULES = (
    Recurring("embedq-maintenance-daily", "17 3 * * *", "maintenance", 86_400, at_start=True),
    Recurring("embedq-retry-failed-weekly", "47 3 * * 0", "retry_failed", 7 * 86_400, at_start=False),
)
#: a minute after start: a process that crashes at once does not also run maintenance
FIRST_RUN_DELAY_SECONDS = 60.0
#: how often a timer looks whether its task is due
CHECK_INTERVAL_SECONDS = 300.0


def schedule_of(task: str) -> Recurring | None:
    return next((item for item in SCHEDULES if item.task == task), None)


async def record_run(conn: asyncpg.Connection, task: str) -> None:
    """A run made elsewhere (POST /v1/maintenance, called by a QStash schedule) counts too."""
    recurring = schedule_of(task)
    if recurring is not None:
        await conn.execute(query("schedule_runs_record"), recurring.schedule_id)


class ScheduledMaintenance(PeriodicService):
    """One Recurring on a local timer: looks every CHECK_INTERVAL_SECONDS (or every period, if
    shorter) whether the task is due, and runs it if so; a failed run is logged and tried again."""

    action = "maintenance"

    def __init__(
        self,
        pool: asyncpg.Pool,
        recurring: Recurring,
        first_run_delay: float = FIRST_RUN_DELAY_SECONDS,
        check_interval: float = CHECK_INTERVAL_SECONDS,
    ):
        super().__init__(min(check_interval, recurring.every_seconds), first_delay=first_run_delay)
        self.pool = pool
        self.recurring = recurring

    async def run_once(self) -> bool:
        task = self.recurring.schedule_id
        async with self.pool.acquire() as conn:
            if not self.recurring.at_start:
                await conn.execute(query("schedule_runs_seed"), task)
            # the claim's row lock is held while the task runs: a process that finds it due at
            # the same moment waits, then finds it done
            async with conn.transaction():
                if await conn.fetchval(query("schedule_runs_claim"), task, self.recurring.every_seconds) is None:
                    return False
                await run_maintenance(conn, retry_all_failed=self.recurring.task == "retry_failed")
        return False


async def run_local_schedules(
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    schedules: tuple[Recurring, ...] = SCHEDULES,
    first_run_delay: float = FIRST_RUN_DELAY_SECONDS,
) -> None:
    await asyncio.gather(*(ScheduledMaintenance(pool, item, first_run_delay).run(stop) for item in schedules))
