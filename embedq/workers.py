"""Who a worker is, and how its absence is noticed.

A worker is a listener or a webhook process: the name it goes by in leases and in
embedq.workers. Each heartbeats there every tenth of EMBEDQ_WORKER_TIMEOUT; the rescuer takes
a worker unseen for two thirds of it for dead (killed, frozen, cut off from the database) and
returns the jobs it was processing, checking every tenth of it. So a dead worker's jobs run
again within EMBEDQ_WORKER_TIMEOUT (30 s) instead of after their lease (EMBEDQ_LEASE_SECONDS,
300 s): at most two thirds, plus one heartbeat the kill came after, plus one rescuer round.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable

from embedq.periodic import PeriodicService
from embedq.store import Store

LISTENER = "listener"
WEBHOOK = "webhook"


def worker_name() -> str:
    """host:pid:random, unique across restarts (a pid is reused, the suffix is not)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def heartbeat_interval(worker_timeout: float) -> float:
    return worker_timeout / 10


def unseen_after(worker_timeout: float) -> float:
    """How long a worker may go unseen before the rescuer takes it for dead."""
    return worker_timeout * 2 / 3


class WorkerHeartbeat(PeriodicService):
    """Tells embedq.workers, every round, that the worker lives: `describe()` gives its mode and
    breaker (a webhook's are fixed; the listener's Heartbeat follows its sink)."""

    action = "heartbeat"

    def __init__(
        self,
        store: Store,
        name: str,
        role: str,
        describe: Callable[[], tuple[str, str]],
        interval: float,
        first_delay: float = 0.0,
    ) -> None:
        super().__init__(interval, first_delay=first_delay)
        self.store = store
        self.name = name
        self.role = role
        self.describe = describe

    async def announce(self) -> None:
        mode, breaker = self.describe()
        await self.store.announce_worker(self.name, mode, breaker, role=self.role)

    async def run_once(self) -> bool:
        await self.announce()
        return False
