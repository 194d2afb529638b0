"""The Python API: `embedq.AsyncClient` and its blocking twin `embedq.Client`, same methods.

    client = embedq.Client()      # DATABASE_URL, else the embedded server (as the CLI does)
    client.migrate()
    client.register_source("article", "public.articles", ["title", "body"], template="{title}\\n\\n{body}")
    if client.wait_until_embedded("article", 42, timeout=30):
        hits = client.search("how do I bake bread", k=5)

The CLI runs on the same methods and the same operations (embedq.operations, embedq.models).

`Client` runs an `AsyncClient` on an event loop of its own, in a background thread. So it works
from plain scripts and also where an event loop is already running in the calling thread
(Jupyter, a sync view of an async framework); there the call blocks that loop while it waits,
so async code should use `AsyncClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Concatenate, ParamSpec, TypeVar

import asyncpg

from embedq import db, migrations, operations, rows
from embedq import search as searching
from embedq.errors import DatabaseUnavailable, InvalidInput
from embedq.notify import Notifier
from embedq.preview import Preview, preview_row
from embedq.providers import create_embedder
from embedq.providers.base import Embedder
from embedq.queries import query
from embedq.rows import RowState, RowStatus
from embedq.search import FilterValue, Hit, Origin
from embedq.settings import Settings
from embedq.status import Status, read_status

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

POOL_MAX_SIZE = 4
#: job state changes are announced here (sql/functions/jobs.sql, jobs_announce)
EVENTS_CHANNEL = "embedq_events"
#: wait_until_embedded looks again this often even without a notification (the safety net)
WAIT_POLL_SECONDS = 2.0
#: the errors a bad registration raises: bad values, unknown tables and columns, constraints
_REGISTRATION_ERRORS = (asyncpg.DataError, asyncpg.SyntaxOrAccessError, asyncpg.IntegrityConstraintViolationError)


@dataclass(frozen=True)
class Migration:
    """The schema revision before and after `migrate()` (before is None on a new database)."""

    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _translated(
    method: Callable[Concatenate[AsyncClient, P], Awaitable[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    """A connection lost in the middle of a call becomes DatabaseUnavailable, as at connect."""

    @functools.wraps(method)
    async def call(self: AsyncClient, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except db.CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(f"lost the connection to the database: {exc}") from exc

    return call


class AsyncClient:
    """embedq from asyncio code. Connections open on first use (a small pool), and close with
    `aclose()` or at the end of `async with`.

    dsn: a PostgreSQL URL; None: DATABASE_URL, else the embedded server in EMBEDQ_DATA_DIR.
    Every other setting (provider and model for `search`) comes from the environment, as for
    the CLI, unless `settings` is given. `embedder` replaces the configured provider."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        application_name: str | None = None,
    ) -> None:
        if settings is None:
            settings = Settings.from_env(database_url=dsn) if dsn else Settings.from_env()
        elif dsn is not None:
            settings = replace(settings, database_url=dsn)
        self.settings = settings
        self.application_name = application_name or f"{settings.application_name}-client"
        self._embedder = embedder
        self._owns_embedder = embedder is None
        self._dsn: str | None = settings.database_url
        self._pool: asyncpg.Pool | None = None
        self._schema_checked = False
        self._opening = asyncio.Lock()
        self._events: _RowEvents | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.close()
            self._events = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._embedder is not None and self._owns_embedder:
            embedder, self._embedder = self._embedder, None
            close = getattr(embedder, "aclose", None)
            if close is not None:
                await close()

    # -- connections -------------------------------------------------------------------------

    async def database_url(self) -> str:
        """The URL this client connects to (starts the embedded server when DATABASE_URL is unset)."""
        if self._dsn is None:
            # debug: the CLI says it on stderr already, and a library should not be chatty
            logger.debug(
                "DATABASE_URL is not set: using the embedded PostgreSQL",
                extra={"action": "connect", "data_dir": str(self.settings.data_dir)},
            )
            self._dsn = await asyncio.to_thread(db.resolve_dsn, self.settings)
        return self._dsn

    async def pool(self) -> asyncpg.Pool:
        """The client's connection pool, opened on first use; the schema must be migrated."""
        pool = await self._connected()
        if not self._schema_checked:
            await db.ensure_migrated(pool)
            self._schema_checked = True
        return pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection from the client's pool, for your own SQL (`embedq.search(...)` in a query)."""
        pool = await self.pool()
        async with pool.acquire() as conn:
            yield conn

    async def _connected(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                dsn = await self.database_url()
                self._pool = await db.create_pool(dsn, self.application_name, min_size=1, max_size=POOL_MAX_SIZE)
        return self._pool

    def embedder(self) -> Embedder:
        """The embedder search uses: the configured provider (EMBEDQ_PROVIDER, EMBEDQ_MODEL)."""
        if self._embedder is None:
            self._embedder = create_embedder(self.settings)
        return self._embedder

    # -- schema and registrations ------------------------------------------------------------

    @_translated
    async def migrate(self) -> Migration:
        """Create or upgrade embedq's schema (`embedq migrate`); touches nothing else. Idempotent."""
        dsn = await self.database_url()
        conn = await db.connect(dsn, f"{self.application_name}-migrate")
        try:
            await db.ensure_pgvector(conn)
        finally:
            await conn.close()
        before = await asyncio.to_thread(migrations.current, dsn)
        await asyncio.to_thread(migrations.upgrade, dsn)
        after = await asyncio.to_thread(migrations.current, dsn)
        if self._pool is not None:
            # connections opened before the migration created the vector type lack its codec
            await self._pool.expire_connections()
        self._schema_checked = True
        return Migration(before, after)

    @_translated
    async def register_source(
        self,
        content_type: str,
        table: str,
        fields: Sequence[str],
        priority: int = 3,
        key_column: str = "id",
        template: str | None = None,
        filters: Sequence[str] | None = None,
    ) -> None:
        """Embed the rows of `table` as `content_type`: triggers queue a job whenever one of
        `fields` changes. `template` lays out the text (`{column}` placeholders); without one,
        each field becomes a `Label: value` line. `filters` name columns copied into the
        vectors' metadata, for `search(..., filters={...})`. Registering again replaces the
        registration. Rows that exist already are queued by `backfill(content_type)`."""
        if isinstance(fields, str):
            raise InvalidInput(f"fields must be a list of column names, not the string {fields!r}")
        pool = await self.pool()
        try:
            await pool.execute(
                query("sources_register"),
                content_type,
                table,
                list(fields),
                priority,
                key_column,
                template,
                list(filters) if filters is not None else None,
            )
        except _REGISTRATION_ERRORS as exc:
            raise InvalidInput(_message(exc)) from None

    @_translated
    async def unregister_source(self, content_type: str) -> None:
        """Remove the triggers and the registration; queued jobs end as dead, vectors stay."""
        pool = await self.pool()
        try:
            await pool.execute(query("sources_unregister"), content_type)
        except _REGISTRATION_ERRORS as exc:
            raise InvalidInput(_message(exc)) from None

    # -- search and rows ---------------------------------------------------------------------

    @_translated
    async def search(
        self,
        text: str,
        k: int = 10,
        types: Sequence[str] | None = None,
        min_score: float | None = None,
        hybrid: bool = False,
        filters: Mapping[str, FilterValue] | None = None,
        chunks: bool = False,
        offset: int = 0,
        *,
        origin: Origin = "python",
    ) -> list[Hit]:
        """The k rows nearest to `text` (embedded with the active model), best first, each with its
        best chunk (`chunks=True`: the chunks themselves). `types` limits the content types,
        `min_score` drops hits below that cosine similarity, `filters` keeps rows whose filterable
        columns hold these values, `offset` pages. `hybrid=True` fuses keyword matches with the
        vectors, so exact tokens (codes, names) are found too. Logged in embedq.search_log."""
        if isinstance(types, str):
            types = [types]
        if min_score is not None and not math.isfinite(min_score):
            raise InvalidInput("min_score must be a finite number")
        async with self.connection() as conn:
            return await searching.search(
                conn,
                self.embedder(),
                text,
                k=k,
                content_types=list(types) if types else None,
                origin=origin,
                hybrid=hybrid,
                min_score=min_score,
                filters=filters,
                chunks=chunks,
                offset=offset,
            )

    @_translated
    async def row_status(self, content_type: str, source_id: object) -> RowStatus:
        """Is this row's embedding current? `state` is current, queued, processing, failed, dead
        or missing, with the job id and its last error."""
        return await rows.row_status(await self.pool(), content_type, str(source_id))

    @_translated
    async def wait_until_embedded(self, content_type: str, source_id: object, timeout: float = 30.0) -> bool:
        """Wait until the row's vectors match the row as committed: True. False when `timeout`
        seconds pass first, or when its job is dead (`row_status` says why); a row with nothing
        to embed (no text, or no such row) stays `missing` until the timeout. Wakes on the job
        events PostgreSQL announces, and looks again every few seconds in case one is missed."""
        source_id = str(source_id)
        pool = await self.pool()
        if self._events is None:
            self._events = _RowEvents(await self.database_url(), f"{self.application_name}-events")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        with self._events.watch(content_type, source_id) as changed:
            while True:
                changed.clear()
                state = (await rows.row_status(pool, content_type, source_id)).state
                if state is RowState.CURRENT:
                    return True
                remaining = deadline - loop.time()
                if state is RowState.DEAD or remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(changed.wait(), min(remaining, WAIT_POLL_SECONDS))
                except TimeoutError:
                    pass

    @_translated
    async def preview(self, content_type: str, source_id: object) -> Preview:
        """The text and the chunks the row is embedded as (its registration's template, chunked as
        processing does); reads only."""
        async with self.connection() as conn:
            return await preview_row(conn, self.embedder(), self.settings, content_type, str(source_id))

    # -- operations --------------------------------------------------------------------------

    @_translated
    async def backfill(
        self,
        content_type: str,
        *,
        priority: int = operations.BACKFILL_PRIORITY,
        model: str | None = None,
        progress: operations.Progress | None = None,
    ) -> int:
        """Queue every existing row of `content_type` (rows written before its registration);
        returns how many jobs were queued. `model`: fill that model side by side (see
        `embedq backfill --model`)."""
        async with self.connection() as conn:
            done = await operations.backfill(
                conn, content_type, priority=priority, model=model, settings=self.settings, progress=progress
            )
        return done.queued

    @_translated
    async def status(self) -> Status:
        """Jobs by status and priority, the oldest pending job, throughput, listeners and their
        mode, rows with vectors per content type (`embedq status`)."""
        async with self.connection() as conn:
            return await read_status(conn, mode="qstash" if self.settings.qstash_enabled else "local")


def _message(exc: Exception) -> str:
    return str(exc).removeprefix("embedq: ")


class _RowEvents:
    """One LISTEN connection per client (embedq.notify.Notifier: keep-alive, reconnects) on the
    job events channel, waking the waiters whose row an event names. After each (re)connect
    every waiter wakes: events sent meanwhile were lost."""

    def __init__(self, dsn: str, application_name: str) -> None:
        self._waiters: dict[tuple[str, str], set[asyncio.Event]] = {}
        self._stop = asyncio.Event()
        notifier = Notifier(dsn, application_name, self._on_payload, channel=EVENTS_CHANNEL)
        self._task = asyncio.create_task(notifier.run(self._stop), name="embedq-client-events")

    def watch(self, content_type: str, source_id: str) -> _Watch:
        return _Watch(self._waiters.setdefault((content_type, source_id), set()))

    def _on_payload(self, payload: str | None) -> None:
        for key in self._keys(payload):
            for event in self._waiters.get(key, ()):
                event.set()
        for key in [k for k, events in self._waiters.items() if not events]:
            del self._waiters[key]

    def _keys(self, payload: str | None) -> list[tuple[str, str]]:
        if payload is None:
            return list(self._waiters)
        try:
            jobs = json.loads(payload)["jobs"]
            named = [(job[1], job[2]) for job in jobs]
        except (ValueError, KeyError, TypeError, IndexError):
            return list(self._waiters)
        # an absurdly long key is announced as null: wake every waiter of that type
        return [k for k in self._waiters if (k[0], k[1]) in named or (k[0], None) in named]

    async def close(self) -> None:
        self._stop.set()
        await self._task


class _Watch:
    def __init__(self, events: set[asyncio.Event]) -> None:
        self._events = events
        self.event = asyncio.Event()

    def __enter__(self) -> asyncio.Event:
        self._events.add(self.event)
        return self.event

    def __exit__(self, *_exc: object) -> None:
        self._events.discard(self.event)


class Client:
    """embedq from ordinary (blocking) code: the methods of AsyncClient, each waiting for its
    result. Close it with `close()` or a `with` block (it also closes when garbage collected and
    at interpreter exit)."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
        application_name: str | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="embedq-client", daemon=True)
        self._thread.start()
        try:
            self._async = self._call(_create_async(dsn, settings, embedder, application_name))
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            raise
        self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._thread, self._async)

    @property
    def settings(self) -> Settings:
        return self._async.settings

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise InvalidInput("this embedq.Client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # interrupted (Ctrl-C): stop the work as well
            raise

    def database_url(self) -> str:
        return self._call(self._async.database_url())

    def migrate(self) -> Migration:
        return self._call(self._async.migrate())

    def register_source(
        self,
        content_type: str,
        table: str,
        fields: Sequence[str],
        priority: int = 3,
        key_column: str = "id",
        template: str | None = None,
        filters: Sequence[str] | None = None,
    ) -> None:
        self._call(self._async.register_source(content_type, table, fields, priority, key_column, template, filters))

    def unregister_source(self, content_type: str) -> None:
        self._call(self._async.unregister_source(content_type))

    def search(
        self,
        text: str,
        k: int = 10,
        types: Sequence[str] | None = None,
        min_score: float | None = None,
        hybrid: bool = False,
        filters: Mapping[str, FilterValue] | None = None,
        chunks: bool = False,
        offset: int = 0,
        *,
        origin: Origin = "python",
    ) -> list[Hit]:
        return self._call(self._async.search(text, k, types, min_score, hybrid, filters, chunks, offset, origin=origin))

    def row_status(self, content_type: str, source_id: object) -> RowStatus:
        return self._call(self._async.row_status(content_type, source_id))

    def wait_until_embedded(self, content_type: str, source_id: object, timeout: float = 30.0) -> bool:
        return self._call(self._async.wait_until_embedded(content_type, source_id, timeout))

    def preview(self, content_type: str, source_id: object) -> Preview:
        return self._call(self._async.preview(content_type, source_id))

    def backfill(
        self,
        content_type: str,
        *,
        priority: int = operations.BACKFILL_PRIORITY,
        model: str | None = None,
        progress: operations.Progress | None = None,
    ) -> int:
        return self._call(self._async.backfill(content_type, priority=priority, model=model, progress=progress))

    def status(self) -> Status:
        return self._call(self._async.status())


for _name in (
    "database_url",
    "migrate",
    "register_source",
    "unregister_source",
    "search",
    "row_status",
    "wait_until_embedded",
    "preview",
    "backfill",
    "status",
):
    getattr(Client, _name).__doc__ = getattr(AsyncClient, _name).__doc__


async def _create_async(
    dsn: str | None, settings: Settings | None, embedder: Embedder | None, application_name: str | None
) -> AsyncClient:
    # made on the client's own loop: what it creates (locks, tasks) belongs to that loop
    return AsyncClient(dsn, settings=settings, embedder=embedder, application_name=application_name)


def _shut_down(loop: asyncio.AbstractEventLoop, thread: threading.Thread, client: AsyncClient) -> None:
    if loop.is_closed():
        return
    try:
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
