"""The listener's heartbeat: it tells embedq.workers (`embedq status`, /v1/status) that it is
alive and in which delivery mode, every round and at once when the mode changes."""

from __future__ import annotations

import logging

from embedq.listener.sinks import Sink
from embedq.periodic import PeriodicService
from embedq.store import Store

logger = logging.getLogger(__name__)


class Heartbeat(PeriodicService):
    action = "heartbeat"
    #: `status` counts a listener seen in the last two minutes as alive
    default_interval = 30.0

    def __init__(self, store: Store, worker: str, sink: Sink, interval: float | None = None) -> None:
        # the listener announces itself at start; the first round is one interval later
        super().__init__(interval, first_delay=self.default_interval if interval is None else interval)
        self.store = store
        self.worker = worker
        self.sink = sink
        self.announced_mode: str | None = None

    async def announce(self) -> None:
        mode = self.sink.mode
        await self.store.announce_worker(self.worker, mode, self.sink.breaker.value)
        self.announced_mode = mode

    async def announce_if_changed(self) -> None:
        """Against what was announced: a trial publish (half-open) that succeeds is a change too."""
        if self.sink.mode != self.announced_mode:
            logger.warning(
                "delivery mode changed",
                extra={"action": "mode", "worker": self.worker, "from": self.announced_mode, "to": self.sink.mode},
            )
            await self.announce()

    async def run_once(self) -> bool:
        await self.announce()
        return False
