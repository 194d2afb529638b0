"""Job state changes for GET /v1/events: one LISTEN connection per webhook process (channel
embedq_events, fed by the SQL state transitions), fanned out to every subscribed client."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from embedq.notify import Notifier

logger = logging.getLogger(__name__)

CHANNEL = "embedq_events"
#: a client that falls this far behind loses events rather than slowing the others down
QUEUE_SIZE = 1_000


class EventHub:
    def __init__(self, dsn: str, application_name: str) -> None:
        self.notifier = Notifier(dsn, application_name, self._publish, channel=CHANNEL)
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.dropped = 0

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)

    def _publish(self, payload: str | None) -> None:
        if payload is None or not self.subscribers:
            return
        try:
            message = json.loads(payload)
            events = [
                {"event": message["event"], "job_id": job[0], "content_type": job[1], "source_id": job[2]}
                for job in message["jobs"]
            ]
        except (ValueError, KeyError, TypeError, IndexError):
            logger.warning("unreadable event payload", extra={"action": "events"})
            return
        for queue in self.subscribers:
            for event in events:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self.dropped += 1
