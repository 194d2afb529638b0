"""The rescuer: returns jobs whose lease expired (their worker crashed or hung) to the queue."""

from __future__ import annotations

import asyncio
import logging

from embedq.db import CONNECTION_ERRORS
from embedq.jobs import JobStatus
from embedq.store import Store

logger = logging.getLogger(__name__)


async def rescue_once(store: Store) -> int:
    rows = await store.rescue()
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


async def run_rescuer(store: Store, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await rescue_once(store)
        except CONNECTION_ERRORS as exc:
            logger.warning("rescuer could not reach the database", extra={"action": "rescue", "error": str(exc)})
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
