"""Background services that run on a timer: the rescuer, the indexer, the listener's heartbeat
and queue metrics, the local maintenance schedules (river's maintenance services in spirit).

A service says what one round does (`run_once`) and how often (`interval`, a named default per
service); `run` repeats it until `stop` is set. A round that cannot reach the database, or whose
statement fails, is logged and tried again next period: a timer must outlive one bad round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import asyncpg

from embedq.db import CONNECTION_ERRORS

logger = logging.getLogger(__name__)


async def sleep_until(event: asyncio.Event, seconds: float) -> bool:
    """Sleep for `seconds`, or less if `event` is set meanwhile. Returns whether it was set."""
    try:
        await asyncio.wait_for(event.wait(), max(seconds, 0.0))
    except TimeoutError:
        return event.is_set()
    return True


class PeriodicService:
    """Subclasses set `action` (their logs' action, their task's name), `default_interval`, and
    implement run_once()."""

    action: ClassVar[str] = "periodic"
    default_interval: ClassVar[float] = 30.0

    def __init__(self, interval: float | None = None, *, first_delay: float = 0.0) -> None:
        self.interval = self.default_interval if interval is None else interval
        #: before the first round (0: at once)
        self.first_delay = first_delay

    async def run_once(self) -> bool:
        """One round. True when the service has nothing left to do, ever (run() then returns)."""
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        if self.first_delay and await sleep_until(stop, self.first_delay):
            return
        while not stop.is_set():
            try:
                if await self.run_once():
                    return
            except CONNECTION_ERRORS as exc:
                logger.warning(
                    "could not reach the database; next round later", extra={"action": self.action, "error": str(exc)}
                )
            except asyncpg.PostgresError as exc:
                logger.error("round failed; next round later", extra={"action": self.action, "error": str(exc)})
            if await sleep_until(stop, self.interval):
                return

    def start(self, stop: asyncio.Event) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(stop), name=f"embedq-{self.action}")


__all__ = ["PeriodicService", "sleep_until"]
