"""The long-running processes behind `embedq listen`, `embedq serve` and `embedq up`: start-up
(database check, embedder warm-up, metrics), the signals that stop them, and an orderly
shutdown (SIGTERM finishes the batch in hand).

They start in any weather: QStash unreachable, rate limited or refusing the token costs one
warning line, the listener processes jobs itself meanwhile (listener/sinks.py), and the QStash
schedules are upserted in the background once QStash answers. `listen` and `up` run the
recurring tasks (embedq.schedules): as QStash schedules, or on a local timer shared through the
database by every process that runs one."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from prometheus_client import start_http_server

from embedq import db
from embedq.listener import Listener
from embedq.listener.worker import Totals
from embedq.metrics import REGISTRY
from embedq.providers import create_embedder
from embedq.providers.base import Embedder
from embedq.qstash.schedules import QStashSchedules
from embedq.schedules import run_local_schedules
from embedq.settings import Settings

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: how long the webhook keeps an idle connection open: longer than any Retry-After it answers
#: (5 s). With uvicorn's default (5 s), QStash's retry 5 s later could reuse the connection just as
#: the server closes it; an attempt lost that way carries no Retry-After, and QStash's next one
#: comes by its own schedule, up to 30 minutes later.
KEEP_ALIVE_SECONDS = 75


#: the commands that run the recurring tasks (docker-compose runs one of them: tests/unit/test_compose.py)
COMMANDS_RUNNING_SCHEDULES = ("listen", "up")


async def run_listener(settings: Settings, *, drain: bool = False) -> Totals:
    """The listener (and the schedules) until SIGTERM / Ctrl-C, or, with drain, the listener
    alone until nothing is runnable."""
    dsn = db.resolve_dsn(settings)
    embedder = await _ready_embedder(settings)
    stop = asyncio.Event()
    schedules: asyncio.Task[None] | None = None
    try:
        if settings.metrics_port:
            start_http_server(settings.metrics_port, registry=REGISTRY)
        listener = Listener(dsn, embedder, settings)

        def shutdown() -> None:
            stop.set()
            listener.stop()

        _on_stop_signal(shutdown)
        if not drain:
            schedules = asyncio.create_task(run_schedules(dsn, settings, stop), name="embedq-schedules")
        return await listener.run(drain=drain)
    finally:
        stop.set()
        if schedules is not None:
            await schedules
        await _close(embedder)


async def serve(settings: Settings, *, with_listener: bool, host: str, port: int) -> None:
    """The webhook (and, for `up`, the listener and the schedules) until SIGTERM / Ctrl-C."""
    # deferred: the HTTP stack (uvicorn, Starlette, the routes) costs `embedq listen` ~0.2 s of start-up
    import uvicorn

    from embedq.webhook.app import create_app

    dsn = db.resolve_dsn(settings)
    # one clear line now, rather than a traceback from the server's startup
    conn = await db.connect(dsn, f"{settings.application_name}-startup")
    try:
        await db.ensure_migrated(conn)
    finally:
        await conn.close()
    embedder = await _ready_embedder(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, dsn=dsn, embedder=embedder),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    # uvicorn catches SIGTERM/SIGINT itself while it serves (and re-raises them once it stopped):
    # it returns, and shutdown() below stops the rest; ours catch them before and after
    stop = asyncio.Event()
    listener = Listener(dsn, embedder, settings) if with_listener else None

    def shutdown() -> None:
        stop.set()
        server.should_exit = True
        if listener is not None:
            listener.stop()

    _on_stop_signal(shutdown)
    tasks: list[asyncio.Task[Any]] = [asyncio.create_task(server.serve(), name="embedq-webhook")]
    #: ends by itself once the QStash schedules are upserted: not a reason to stop
    background: list[asyncio.Task[Any]] = []
    try:
        if listener is not None:
            tasks.append(asyncio.create_task(listener.run(), name="embedq-listener"))
            background.append(asyncio.create_task(run_schedules(dsn, settings, stop), name="embedq-schedules"))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        shutdown()
        await asyncio.gather(*tasks, *background)
    finally:
        shutdown()
        await _close(embedder)


async def run_schedules(dsn: str, settings: Settings, stop: asyncio.Event) -> None:
    """With QStash: upsert its schedules, now or once it answers. Without: the local timers.
    Runs until `stop` (the QStash upsert ends sooner, once done)."""
    if settings.qstash_enabled:
        await QStashSchedules(settings).run(stop)
        return
    # min_size 0: connects on first use, so a database away at that moment costs one round only
    pool = await db.create_pool(dsn, f"{settings.application_name}-schedules", min_size=0, max_size=1)
    try:
        await run_local_schedules(pool, stop)
    finally:
        await pool.close()


async def _ready_embedder(settings: Settings) -> Embedder:
    """The configured embedder with its weights loaded, so the first batch is not slow."""
    embedder = create_embedder(settings)
    warm = getattr(embedder, "warm", None)
    if warm is not None:
        await asyncio.to_thread(warm)
    return embedder


async def _close(embedder: Embedder) -> None:
    close = getattr(embedder, "aclose", None)
    if close is not None:
        await close()


def _on_stop_signal(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
