"""The webhook's ASGI app (Starlette), one module per audience:

- embedq.webhook.qstash_routes: what QStash calls (signed; no token);
- embedq.webhook.read_api: status, search, events, row states, metrics, health;
- embedq.webhook.admin: the dashboard and the operator's job routes.

embedq.webhook.auth grants each request its scopes, once, before routing; routes declare what
they need with `@requires`. A database that is away answers 503 + Retry-After on every route.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import Response

from embedq import db
from embedq.processing import Processor
from embedq.providers import create_embedder
from embedq.providers.base import Embedder
from embedq.settings import Settings
from embedq.store import JobStore
from embedq.webhook import admin, qstash_routes, read_api
from embedq.webhook.auth import TokenBackend
from embedq.webhook.events import EventHub
from embedq.webhook.responses import error
from embedq.webhook.state import State
from embedq.workers import WEBHOOK, WorkerHeartbeat, heartbeat_interval, worker_name

#: how long start-up waits for the events connection, so the first subscribers miss nothing
EVENTS_CONNECT_SECONDS = 5.0


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """Every route: the database is away (restarting, unreachable). QStash retries on 503."""
    return error(503, f"database unavailable: {exc}", **{"Retry-After": "5"})


def create_app(settings: Settings, *, dsn: str | None = None, embedder: Embedder | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        resolved_dsn = dsn or db.resolve_dsn(settings)
        pool = await db.create_pool(
            resolved_dsn, f"{settings.application_name}-webhook", min_size=1, max_size=10, worker=True
        )
        used_embedder = embedder or create_embedder(settings)
        events = EventHub(resolved_dsn, f"{settings.application_name}-events")
        stop_events = asyncio.Event()
        events_task = asyncio.create_task(events.notifier.run(stop_events), name="embedq-events")
        heartbeat_task: asyncio.Task[None] | None = None
        try:
            async with pool.acquire() as conn:
                await db.ensure_migrated(conn)
            store = JobStore(pool)
            await store.ensure_model(used_embedder.model, used_embedder.provider, used_embedder.dimensions)
            with contextlib.suppress(TimeoutError):  # it keeps trying in the background
                await asyncio.wait_for(events.notifier.connected.wait(), EVENTS_CONNECT_SECONDS)
            name = f"webhook:{worker_name()}"
            app.state.embedq = State(
                settings=settings,
                pool=pool,
                store=store,
                embedder=used_embedder,
                processor=Processor(store, used_embedder, settings, redelivery_seconds=settings.dispatch_timeout),
                verifiers=qstash_routes.build_verifiers(settings),
                name=name,
                events=events,
            )
            # the jobs a delivery was processing when this process died run again within
            # EMBEDQ_WORKER_TIMEOUT (embedq.workers), as a listener's do
            heartbeat = WorkerHeartbeat(
                store, name, WEBHOOK, lambda: ("qstash", "closed"), heartbeat_interval(settings.worker_timeout)
            )
            heartbeat_task = heartbeat.start(stop_events)
            yield
        finally:
            stop_events.set()
            await events_task
            if heartbeat_task is not None:
                await heartbeat_task
                with contextlib.suppress(*db.CONNECTION_ERRORS, asyncpg.PostgresError):
                    await JobStore(pool).forget_worker(name)
            await pool.close()
            if embedder is None and hasattr(used_embedder, "aclose"):
                await used_embedder.aclose()

    auth = TokenBackend(settings)
    return Starlette(
        routes=[*qstash_routes.routes, *read_api.routes, *admin.routes],
        middleware=[Middleware(AuthenticationMiddleware, backend=auth)],
        exception_handlers={
            401: auth.read_denied,
            403: auth.admin_denied,
            **{error_class: database_unavailable for error_class in db.CONNECTION_ERRORS},
        },
        lifespan=lifespan,
    )


__all__ = ["State", "create_app"]
