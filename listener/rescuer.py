"""The rescuer: returns jobs whose lease expired (their worker crashed or hung) to the queue."""

from __future__ import annotations

import logging

from embedq.jobs import JobStatus
from embedq.periodic import PeriodicService
from embedq.settings import Settings
from embedq.store import Store

logger = logging.getLogger(__name__)


class Rescuer(PeriodicService):
    action = "rescue"
    default_interval = Settings.rescue_interval

    def __init__(self, store: Store, interval: float | None = None) -> None:
        super().__init__(interval)
        self.store = store

    async def run_once(self) -> bool:
        await self.rescue()
        return False

    async def rescue(self) -> int:
        """One round; the number of jobs returned (or ended, out of attempts)."""
        rows = await self.store.rescue()
        if rows:
            logger.warning(
                "expired leases returned",
                extra={
                    "action": "rescue",
                    "job_ids": [r.id for r in rows],
                    "dead": [r.id for r in rows if r.status is JobStatus.DEAD],
                },
            )
        return len(rows)
