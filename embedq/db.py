"""Connections: where the database is, pools that name themselves, driver errors translated."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pgvector.asyncpg import register_vector

from embedq import embedded
from embedq.errors import DatabaseUnavailable
from embedq.queries import query
from embedq.settings import Settings

logger = logging.getLogger(__name__)

#: errors that mean "the database is not there (now)", as opposed to a bad query
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidPasswordError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    # "cannot switch to state ...": a connection cut mid-protocol while the server restarts
    # (MagicStack/asyncpg#784); the pool replaces the connection
    asyncpg.exceptions.InternalClientError,
    TimeoutError,
)


def resolve_dsn(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server (started on first use)."""
    if settings.database_url:
        return settings.database_url
    return embedded.start(settings.data_dir)


def describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def storable_text(text: str) -> str:
    """Text PostgreSQL accepts: no NUL, no lone surrogates (error messages from providers and
    QStash callbacks may hold either)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await register_vector_codec(conn)


async def register_vector_codec(conn: asyncpg.Connection) -> bool:
    """Teach the connection pgvector's types. False while the type does not exist yet (before
    `embedq migrate`); a connection opened before the migration calls this again after it
    (pools: `Pool.expire_connections()`, so each connection is made again)."""
    try:
        await register_vector(conn)
    except ValueError:
        return False
    return True


async def connect(dsn: str, application_name: str, **kwargs: Any) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(dsn, server_settings={"application_name": application_name}, timeout=10, **kwargs)
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to {describe(dsn)}: {exc}") from exc
    await _init_connection(conn)
    return conn


async def check_reachable(dsn: str, application_name: str) -> None:
    """DatabaseUnavailable with a one-line reason, or nothing."""
    conn = await connect(dsn, application_name)
    await conn.close()


#: what a worker's connections (listener, webhook) change: their commits do not wait for the
#: disk. A crash can lose the last fraction of a second of claims and completions; every one of
#: them is redone from the jobs table (a job lost back to pending or to its expired lease runs
#: again, and writes the same vectors), while the application's own writes stay as durable as it
#: made them. Each claim and completion saves a disk flush: the write -> vector latency of an idle
#: listener and the throughput of a busy one both gain.
WORKER_SERVER_SETTINGS = {"synchronous_commit": "off"}


async def create_pool(
    dsn: str, application_name: str, *, min_size: int = 1, max_size: int = 10, worker: bool = False
) -> asyncpg.Pool:
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            server_settings={"application_name": application_name, **(WORKER_SERVER_SETTINGS if worker else {})},
            timeout=10,
        )
    except CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable(f"cannot connect to {describe(dsn)}: {exc}") from exc


@contextlib.asynccontextmanager
async def session(settings: Settings, role: str = "cli") -> AsyncIterator[asyncpg.Connection]:
    """One connection for a short command; fails with DatabaseUnavailable, never a traceback."""
    dsn = resolve_dsn(settings)
    conn = await connect(dsn, f"{settings.application_name}-{role}")
    try:
        yield conn
    finally:
        await conn.close()


async def ensure_migrated(conn: asyncpg.Connection) -> None:
    if not await conn.fetchval(query("schema_is_migrated")):
        raise DatabaseUnavailable("the embedq schema is missing: run `embedq migrate` first")


async def ensure_pgvector(conn: asyncpg.Connection) -> None:
    if not await conn.fetchval(query("server_has_pgvector")):
        version = await conn.fetchval("SHOW server_version")
        raise DatabaseUnavailable(
            f"this PostgreSQL server ({version}) does not have the pgvector extension ('vector'): "
            "install pgvector on it, or unset DATABASE_URL to use the embedded server"
        )
