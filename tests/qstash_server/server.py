"""A QStash-compatible server for tests and local development.

    async with QStashServer(time_scale=0.001) as qstash:
        client = AsyncQStash(qstash.token, base_url=qstash.url, retry=False)
        ...
        await qstash.wait_idle()
        assert qstash.counters.deliveries == 1

It speaks the wire protocol of /work/shared/QSTASH.md (publish, batch, messages, DLQ,
schedules, signed deliveries with retries and callbacks) on uvicorn inside the running event
loop. Test switches: `set_outage`, `set_quota_exceeded`, `pause_delivery`/`resume_delivery`,
`trigger_schedule`, `wait_idle`; the same exist over HTTP under `/_control` (see api.py).
"""

from __future__ import annotations

import contextlib
from typing import Any

from tests.http_server import serve_app
from tests.qstash_server.api import QStashApi
from tests.qstash_server.broker import (
    DEFAULT_DEDUPLICATION_WINDOW_SECONDS,
    DEFAULT_DELIVERY_TIMEOUT_SECONDS,
    Broker,
    Counters,
)
from tests.qstash_server.messages import Attempt, DeadLetter, Message, Schedule

# The local dev server's fixed credentials, used by Upstash's own docs and examples.
DEFAULT_TOKEN = "eyJVc2VySUQiOiJkZWZhdWx0VXNlciIsIlBhc3N3b3JkIjoiZGVmYXVsdFBhc3N3b3JkIn0="
DEFAULT_CURRENT_SIGNING_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
DEFAULT_NEXT_SIGNING_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"


class QStashServer:
    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        current_signing_key: str = DEFAULT_CURRENT_SIGNING_KEY,
        next_signing_key: str = DEFAULT_NEXT_SIGNING_KEY,
        time_scale: float = 1.0,
        deduplication_window: float = DEFAULT_DEDUPLICATION_WINDOW_SECONDS,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT_SECONDS,
        run_cron: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """`time_scale` multiplies every wait (0.001: a 12 s backoff takes 12 ms); `run_cron`
        fires schedules on their cron in real minutes (tests call `trigger_schedule` instead)."""
        self.token = token
        self.host = host
        self.port = port
        self.run_cron = run_cron
        self.broker = Broker(
            current_signing_key=current_signing_key,
            next_signing_key=next_signing_key,
            time_scale=time_scale,
            deduplication_window=deduplication_window,
            delivery_timeout=delivery_timeout,
        )
        self._url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def url(self) -> str:
        """Base URL for `QSTASH_URL` / `base_url=`: `http://127.0.0.1:<port>`."""
        if self._url is None:
            raise RuntimeError("the QStash server is not running")
        return self._url

    @property
    def env(self) -> dict[str, str]:
        """The QSTASH_* variables a client of this server needs."""
        return {
            "QSTASH_URL": self.url,
            "QSTASH_TOKEN": self.token,
            "QSTASH_CURRENT_SIGNING_KEY": self.current_signing_key,
            "QSTASH_NEXT_SIGNING_KEY": self.next_signing_key,
        }

    @property
    def current_signing_key(self) -> str:
        return self.broker.current_signing_key

    @property
    def next_signing_key(self) -> str:
        return self.broker.next_signing_key

    async def __aenter__(self) -> QStashServer:
        stack = contextlib.AsyncExitStack()
        try:
            self._url = await stack.enter_async_context(
                serve_app(QStashApi(self.broker, self.token).app(), self.host, self.port)
            )
            stack.push_async_callback(self.broker.aclose)
            if self.run_cron:
                self.broker.start_cron()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        assert self._stack is not None
        stack, self._stack = self._stack, None
        await stack.aclose()
        self._url = None

    # -- test switches -----------------------------------------------------------------------

    def set_outage(self, enabled: bool = True) -> None:
        """While enabled, every /v2 route answers 503 `{"error": ...}`; accepted messages still go out."""
        self.broker.outage = enabled

    def set_quota_exceeded(self, kind: str | None = "daily") -> None:
        """`"daily"` or `"burst"`: publish and batch answer 429 with that limit's headers; None: back to normal."""
        if kind not in (None, "daily", "burst"):
            raise ValueError("kind must be 'daily', 'burst' or None")
        self.broker.quota = kind

    def pause_delivery(self) -> None:
        """Keep accepting messages but hold every delivery until `resume_delivery`."""
        self.broker.pause_delivery()

    def resume_delivery(self) -> None:
        self.broker.resume_delivery()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every accepted message (callbacks included) is delivered, dead-lettered or
        cancelled; TimeoutError otherwise (always, while delivery is paused with work pending)."""
        await self.broker.wait_idle(timeout)

    def trigger_schedule(self, schedule_id: str) -> str:
        """Run a schedule now, as its cron would; returns the new message id."""
        return self.broker.trigger_schedule(schedule_id)

    # -- what the server saw -----------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return self.broker.counters

    @property
    def attempts(self) -> list[Attempt]:
        """Every delivery attempt (callbacks included), oldest first."""
        return self.broker.attempts

    @property
    def messages(self) -> dict[str, Message]:
        """Every message ever accepted (finished ones too), by id."""
        return self.broker.messages

    @property
    def dead_letters(self) -> dict[str, DeadLetter]:
        return self.broker.dead_letters

    @property
    def schedules(self) -> dict[str, Schedule]:
        return self.broker.schedules

    def attempts_of(self, message_id: str) -> list[Attempt]:
        return self.broker.messages[message_id].attempts
