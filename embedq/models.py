"""Embedding models in the database (embedq.models): which one search uses, which are being
filled side by side, and dropping an old one. One implementation each, used by the CLI, the
Python API and backfill.

A model is recorded the first time something embeds with it (`ensure_model`); the first one
recorded is the active one. `start_filling` makes row changes queue jobs for another model as
well, `activate_model` switches search to it, `drop_model` deletes an old model's vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from embedq.errors import InvalidInput, NotFound
from embedq.queries import query
from embedq.settings import Settings
from embedq.store import Model


@dataclass(frozen=True)
class ModelInfo:
    """A model with its vectors, its queued jobs and the state of its HNSW index."""

    name: str
    provider: str
    dimensions: int
    active: bool
    maintained: bool
    created_at: datetime
    hnsw_index: str
    vectors: int
    queued: int

    @property
    def state(self) -> str:
        return "active" if self.active else "filling" if self.maintained else ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "dimensions": self.dimensions,
            "active": self.active,
            "maintained": self.maintained,
            "created_at": self.created_at.isoformat(),
            "hnsw_index": self.hnsw_index,
            "vectors": self.vectors,
            "queued": self.queued,
        }


async def list_models(conn: asyncpg.Connection) -> list[ModelInfo]:
    return [ModelInfo(**dict(r)) for r in await conn.fetch(query("models_list"))]


async def ensure_model(conn: asyncpg.Connection, name: str, provider: str, dimensions: int) -> Model:
    """Record a model (the first one becomes the active one); refuses other dimensions for a
    known name."""
    return Model.from_record(await conn.fetchrow(query("models_ensure"), name, provider, dimensions))


async def start_filling(conn: asyncpg.Connection, name: str, settings: Settings | None = None) -> str | None:
    """The model a backfill queues jobs for: None for the active model (its jobs name no model),
    else `name`, marked as being filled, so that row changes queue jobs for it from now on too.
    A model the database does not know yet is recorded only if it is the configured one
    (`settings`: EMBEDQ_MODEL and its provider), whose dimensions are known."""
    recorded = await conn.fetchrow(query("models_get"), name)
    if recorded is None:
        if settings is None or name != settings.model:
            raise NotFound(
                f"model {name!r} is not known: run this with EMBEDQ_MODEL={name} (and its provider "
                "settings) so embedq can record its dimensions, or start a listener with it first"
            )
        recorded = await conn.fetchrow(query("models_ensure"), name, settings.provider, settings.dimensions)
    if recorded["active"]:
        return None
    await conn.execute(query("models_maintain"), name)
    return name


@dataclass(frozen=True)
class Activated:
    model: Model
    #: jobs of the model still queued when it was activated: search misses those rows until done
    queued: int


async def activate_model(conn: asyncpg.Connection, name: str) -> Activated:
    """Make search use this model from now on. The previous one keeps its vectors but no longer
    follows row changes."""
    # counted before: once active, its queue is shared with the jobs of no model
    queued = await conn.fetchval(query("models_queued_jobs"), name)
    try:
        record = await conn.fetchrow(query("models_activate"), name)
    except asyncpg.UndefinedObjectError as exc:
        raise NotFound(exc.args[0].removeprefix("embedq: ")) from None
    return Activated(Model.from_record(record), queued)


async def check_droppable(conn: asyncpg.Connection, name: str) -> None:
    """NotFound or InvalidInput if `drop_model` would refuse: callers ask for confirmation after it."""
    await _drop_statement(conn, name)


async def _drop_statement(conn: asyncpg.Connection, name: str) -> str:
    info = await conn.fetchrow(query("models_drop"), name)
    if info["active"] is None:
        raise NotFound(f"model {name!r} is not known")
    if info["active"]:
        raise InvalidInput(f"model {name!r} is the active one: activate another model first")
    return info["drop_index"]


@dataclass(frozen=True)
class Dropped:
    name: str
    vectors: int
    jobs: int


async def drop_model(conn: asyncpg.Connection, name: str) -> Dropped:
    """Delete a model's vectors, its HNSW index and its queued jobs, in one transaction; never
    the active model's."""
    async with conn.transaction():
        await conn.execute(await _drop_statement(conn, name))
        vectors = await conn.fetchval(query("models_delete_vectors"), name)
        jobs = await conn.fetchval(query("models_delete_jobs"), name)
        await conn.execute(query("models_forget"), name)
    return Dropped(name, vectors, jobs)
