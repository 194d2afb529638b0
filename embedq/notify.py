"""LISTEN on its own connection, with a keep-alive ping and reconnection with backoff.

A notification only wakes the workers; the jobs table decides what there is to do. After a
reconnect the workers are woken too: notifications sent while disconnected are lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import asyncpg

from embedq import db, metrics
from embedq.errors import DatabaseUnavailable
from embedq.periodic import sleep_until

logger = logging.getLogger(__name__)

CHANNEL = "embedq_jobs"
KEEPALIVE_SECONDS = 15.0
BACKOFF_MIN_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 10.0
#: a connection that cannot be made or was lost: reconnect
RECONNECT_ERRORS: tuple[type[BaseException], ...] = (DatabaseUnavailable, *db.CONNECTION_ERRORS)
CLOSE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *db.CONNECTION_ERRORS)


class Notifier:
    """on_message(payload) runs for every notification, and with None after each (re)connect,
    since anything sent while disconnected was lost."""

    def __init__(
        self, dsn: str, application_name: str, on_message: Callable[[str | None], None], channel: str = CHANNEL
    ) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.on_message = on_message
        self.channel = channel
        self.connected = asyncio.Event()

    def _on_notify(self, _connection, _pid, _channel, payload: str) -> None:
        self.on_message(payload)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = BACKOFF_MIN_SECONDS
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            lost = asyncio.Event()
            try:
                conn = await db.connect(self.dsn, self.application_name)
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._on_notify)
                self.connected.set()
                self.on_message(None)  # anything sent while we were away is lost: look again
                backoff = BACKOFF_MIN_SECONDS
                logger.info("listening", extra={"action": "listen", "channel": self.channel})
                while not stop.is_set() and not lost.is_set():
                    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                    done, pending = await asyncio.wait(
                        waiters, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in pending:
                        task.cancel()
                    if not done:
                        await conn.execute("SELECT 1", timeout=KEEPALIVE_SECONDS)
            except RECONNECT_ERRORS as exc:
                logger.warning(
                    "notification connection lost; reconnecting",
                    extra={"action": "listen_reconnect", "error": str(exc), "backoff_s": round(backoff, 2)},
                )
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    try:
                        await asyncio.wait_for(conn.close(), 2)
                    except CLOSE_ERRORS:
                        conn.terminate()
            if stop.is_set():
                return
            metrics.LISTEN_RECONNECTS.inc()
            if await sleep_until(stop, backoff * (0.5 + random.random())):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)
