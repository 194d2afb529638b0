"""Job state changes for GET /v1/events (Server-Sent Events).

One LISTEN connection per webhook process (channel embedq_events, notified by the SQL state
transitions in the transaction that makes them), fanned out to every subscribed client.

Every event carries the id the database drew for it (embedq.event_id_seq), the same on every
replica, as the SSE `id:`. Each process keeps the last REPLAY_WINDOW events it received, in the
order PostgreSQL delivered them (commit order, the same for every listener): a client that
reconnects with `Last-Event-ID` gets the events it missed, then the live ones. Where that cannot
be promised (the id is older than the window or was never seen by this process, or this
process's own LISTEN connection dropped in between), the client gets a `resync` event instead:
re-read the state (GET /v1/rows/..., /v1/status), then follow the stream.

A client watching one row or type (`?type=&source_id=`) is also told how far it has read past
events it did not ask for: an `id:` line without data (browsers update `lastEventId` and
dispatch nothing), at most once per POSITION_DELAY, so its resume starts where it left off.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from sse_starlette.event import ServerSentEvent

from embedq import metrics
from embedq.notify import Notifier

logger = logging.getLogger(__name__)

CHANNEL = "embedq_events"
#: events each webhook process keeps for clients that resume with Last-Event-ID
REPLAY_WINDOW = 10_000
#: events waiting for one client; a client this far behind is disconnected (it resumes from the window)
CLIENT_BACKLOG = 1_000
#: seconds a filtered stream waits before telling its client how far it has read
POSITION_DELAY = 1.0

EVENTS_DROPPED = Counter(
    "embedq_events_dropped_total",
    f"Events not sent live to an SSE client that fell {CLIENT_BACKLOG} events behind "
    "(its stream is closed; it resumes from the replay window with Last-Event-ID)",
    registry=metrics.REGISTRY,
)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str  # queued, processing, dispatched, done, failed, dead
    job_id: int
    content_type: str
    source_id: str | None  # None: a key too long to announce
    error: str | None = None  # failed and dead events: why (cut to 300 characters)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "event": self.kind,
            "job_id": self.job_id,
            "content_type": self.content_type,
            "source_id": self.source_id,
        }
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may be missing here: the client should re-read the state it shows."""

    reason: str


def parse_notification(payload: str) -> list[Event]:
    """The events of one jobs_announce notification; ValueError if it is not one."""
    try:
        message = json.loads(payload)
        kind, error = message["event"], message.get("error")
        if not isinstance(kind, str) or not (error is None or isinstance(error, str)):
            raise TypeError("event and error must be strings")
        return [
            Event(
                int(event_id),
                kind,
                int(job_id),
                str(content_type),
                None if source_id is None else str(source_id),
                error,
            )
            for job_id, content_type, source_id, event_id in message["jobs"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a job event notification: {exc}") from exc


class Subscription:
    """One client's stream: what it missed (replayed), then live events, in delivery order."""

    def __init__(self, content_type: str | None, source_id: str | None, position: str | None) -> None:
        self.content_type = content_type
        self.source_id = source_id
        self.pending: deque[Event | Resync] = deque()
        self.wakeup = asyncio.Event()
        self.cut = False
        #: the id of the last event this stream has read, wanted or not
        self.seen: int | None = None
        #: the position the client holds (its Last-Event-ID, then the last id sent)
        self.position = position
        self.idle = False  # waiting with no position to report

    def wants(self, event: Event) -> bool:
        return (self.content_type is None or event.content_type == self.content_type) and (
            self.source_id is None or event.source_id == self.source_id
        )

    def push(self, item: Event | Resync) -> None:
        if isinstance(item, Event):
            self.seen = item.id
            if not self.wants(item):
                if self.idle:
                    self.wakeup.set()  # a position to report now
                return
        self.pending.append(item)
        self.wakeup.set()

    async def server_sent_events(self) -> AsyncIterator[ServerSentEvent]:
        while True:
            while self.pending:
                item = self.pending.popleft()
                if isinstance(item, Resync):
                    yield ServerSentEvent(json.dumps({"reason": item.reason}), event="resync")
                else:
                    self.position = str(item.id)
                    yield ServerSentEvent(json.dumps(item.as_json()), event=item.kind, id=self.position)
            if self.cut:
                return
            self.wakeup.clear()
            if self.seen is None or str(self.seen) == self.position:
                self.idle = True
                try:
                    await self.wakeup.wait()
                finally:
                    self.idle = False
                continue
            try:
                await asyncio.wait_for(self.wakeup.wait(), POSITION_DELAY)
            except TimeoutError:
                # nothing wanted came for a while, and nothing is pending: every event up to
                # `seen` has been sent or was not asked for
                self.position = str(self.seen)
                yield ServerSentEvent(id=self.position)


class EventHub:
    def __init__(
        self,
        dsn: str,
        application_name: str,
        *,
        replay_window: int = REPLAY_WINDOW,
        client_backlog: int = CLIENT_BACKLOG,
    ) -> None:
        self.notifier = Notifier(dsn, application_name, self._on_notification, channel=CHANNEL)
        self.window: deque[Event | Resync] = deque(maxlen=replay_window)
        self.client_backlog = client_backlog
        self.subscriptions: set[Subscription] = set()

    def subscribe(
        self, last_event_id: str | None = None, *, content_type: str | None = None, source_id: str | None = None
    ) -> Subscription:
        """A new stream; with last_event_id, it starts with what the client missed since."""
        subscription = Subscription(content_type, source_id, last_event_id)
        if last_event_id is not None:
            for item in self.missed_since(last_event_id):
                subscription.push(item)
        subscription.seen = self.newest_id()
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.discard(subscription)

    def newest_id(self) -> int | None:
        return next((item.id for item in reversed(self.window) if isinstance(item, Event)), None)

    def missed_since(self, last_event_id: str) -> list[Event | Resync]:
        """Everything this process received after the event `last_event_id`, or a Resync."""
        items = list(self.window)
        wanted = (
            int(last_event_id)
            if last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) <= 20
            else None
        )
        if wanted is not None:
            for position in range(len(items) - 1, -1, -1):
                item = items[position]
                if isinstance(item, Event) and item.id == wanted:
                    return items[position + 1 :]
        return [
            Resync(
                f"event {last_event_id[:40]!r} is not among the last {len(items)} events this server "
                "received: some may be missing"
            )
        ]

    def _on_notification(self, payload: str | None) -> None:
        if payload is None:  # (re)connected: whatever was sent in between is lost
            if self.window or self.subscriptions:
                self._publish([Resync("this server's connection to the database was interrupted")])
            return
        try:
            events = parse_notification(payload)
        except ValueError as exc:
            logger.warning("unreadable event notification", extra={"action": "events", "error": str(exc)})
            return
        self._publish(events)

    def _publish(self, items: Sequence[Event | Resync]) -> None:
        self.window.extend(items)
        for subscription in list(self.subscriptions):
            for item in items:
                subscription.push(item)
            if len(subscription.pending) > self.client_backlog:
                # a client that cannot keep up must not hold the others back nor grow without
                # bound: it is disconnected and resumes from the replay window
                EVENTS_DROPPED.inc(len(subscription.pending))
                subscription.pending.clear()
                subscription.cut = True
                subscription.wakeup.set()
                self.subscriptions.discard(subscription)
