"""The listener's heartbeat: it tells embedq.workers (`embedq status`, /v1/status, and the
rescuers of other listeners, embedq.workers) that it is alive and in which delivery mode, every
round and at once when the mode changes."""

from __future__ import annotations

import logging

from embedq.listener.sinks import Sink
from embedq.settings import Settings
from embedq.store import Store
from embedq.workers import LISTENER, WorkerHeartbeat, heartbeat_interval

logger = logging.getLogger(__name__)


class Heartbeat(WorkerHeartbeat):
    default_interval = heartbeat_interval(Settings.worker_timeout)

    def __init__(self, store: Store, worker: str, sink: Sink, interval: float | None = None) -> None:
        interval = self.default_interval if interval is None else interval
        # the listener announces itself at start; the first round is one interval later
        super().__init__(store, worker, LISTENER, lambda: (sink.mode, sink.breaker.value), interval, interval)
        self.worker = worker
        self.sink = sink
        self.announced_mode: str | None = None

    async def announce(self) -> None:
        mode = self.sink.mode
        await super().announce()
        self.announced_mode = mode

    async def announce_if_changed(self) -> None:
        """Against what was announced: a trial publish (half-open) that succeeds is a change too."""
        if self.sink.mode != self.announced_mode:
            # the failure that caused it was a warning already (listener/sinks.py)
            logger.info(
                "delivery mode changed",
                extra={"action": "mode", "worker": self.worker, "from": self.announced_mode, "to": self.sink.mode},
            )
            await self.announce()
