"""The rescuer: returns to the queue the jobs nobody will end (sql/functions/jobs.sql,
jobs_rescue): those whose lease expired, and those of a worker that stopped heartbeating (killed,
frozen, cut off), which need not wait out their lease (embedq.workers). A dispatch nobody ended
within EMBEDQ_DISPATCH_TIMEOUT counts as a failed delivery."""

from __future__ import annotations

import logging

from embedq.jobs import JobStatus
from embedq.periodic import PeriodicService
from embedq.settings import Settings
from embedq.store import Store
from embedq.workers import heartbeat_interval, unseen_after

logger = logging.getLogger(__name__)


class Rescuer(PeriodicService):
    action = "rescue"
    default_interval = Settings.rescue_interval

    def __init__(self, store: Store, interval: float | None = None, worker_timeout: float | None = None) -> None:
        """worker_timeout: EMBEDQ_WORKER_TIMEOUT (None: only expired leases are returned). The
        rounds then come at least every tenth of it, as often as workers heartbeat."""
        interval = self.default_interval if interval is None else interval
        if worker_timeout is not None:
            interval = min(interval, heartbeat_interval(worker_timeout))
        super().__init__(interval)
        self.store = store
        self.unseen_after = None if worker_timeout is None else unseen_after(worker_timeout)

    async def run_once(self) -> bool:
        await self.rescue()
        return False

    async def rescue(self) -> int:
        """One round; the number of jobs returned (or ended, out of attempts)."""
        rows = await self.store.rescue(self.unseen_after)
        if rows:
            logger.warning(
                "jobs returned to the queue: leases expired or workers gone",
                extra={
                    "action": "rescue",
                    "job_ids": [r.id for r in rows],
                    "dead": [r.id for r in rows if r.status is JobStatus.DEAD],
                },
            )
        return len(rows)
