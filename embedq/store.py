"""The job store: every statement the listener, the webhook and processing run on the outbox and
the vectors, behind one object (procrastinate's JobManager over its connector).

`JobStore` runs the named queries of sql/queries.sql (most of them one call of a plpgsql function
in sql/functions/jobs.sql, where each state change is atomic). `embedq.testing.InMemoryJobStore`
keeps the same promises in dictionaries, so the claim loop, the QStash fallback and the webhook's
answers are tested as plain code too.

A claim is identified by (id, attempts): claiming increments attempts, so a worker whose lease
expired and whose job was claimed again can neither complete nor fail the new claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import numpy as np
from pgvector import Vector

from embedq.jobs import FailureCause, Job, JobStatus
from embedq.queries import query

Key = tuple[str, str]
#: (first, last) priorities, both included; None leaves that end open
PriorityRange = tuple[int | None, int | None]


@dataclass(frozen=True)
class Source:
    """A registered content type (embedq.sources)."""

    content_type: str
    table_name: str
    key_column: str
    fields: tuple[str, ...]
    priority: int
    enabled: bool = True
    template: str | None = None
    #: columns whose values are copied into the vectors' metadata, for search filters
    filters: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, record: Any) -> Source:
        values = dict(record)
        values["fields"] = tuple(values["fields"])
        values["filters"] = tuple(values.get("filters") or ())
        return cls(**values)


@dataclass(frozen=True)
class Model:
    """A model with vectors in the database (embedq.models)."""

    name: str
    provider: str
    dimensions: int
    active: bool
    maintained: bool

    @classmethod
    def from_record(cls, record: Any) -> Model:
        return cls(record["name"], record["provider"], record["dimensions"], record["active"], record["maintained"])


@dataclass(frozen=True)
class Requeued:
    id: int
    status: JobStatus
    #: the pending job of the same row it was merged into (that job re-embeds the row as it is now)
    merged_into: int | None


@dataclass(frozen=True)
class Transition:
    """Where a job ended up after a failure or a rescue."""

    id: int
    status: JobStatus


@dataclass(frozen=True)
class ChunkWrite:
    index: int
    vector: np.ndarray
    content_hash: str
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceWrite:
    """The vectors of one row after processing: the chunks to (re)write, how many chunks the row
    has now (surplus stored chunks go), or that the row is deleted (all its vectors go).
    `metadata`: the row's metadata, written to its unchanged chunks too when it differs (a
    filterable column changed but the text did not)."""

    chunk_count: int = 0
    chunks: list[ChunkWrite] = field(default_factory=list)
    deleted: bool = False
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class QueueCount:
    status: JobStatus
    priority: int
    jobs: int


class Store(Protocol):
    """What the services need of the outbox and the vectors; JobStore and InMemoryJobStore."""

    async def ingest(self) -> int: ...

    async def claim(
        self,
        worker: str,
        limit: int,
        *,
        lease: float,
        max_attempts: int,
        model: str | None,
        to: JobStatus = JobStatus.PROCESSING,
        priorities: PriorityRange | None = None,
    ) -> list[Job]: ...

    async def in_flight_by_priority(self) -> dict[int, int]: ...

    async def has_runnable(self, priorities: PriorityRange) -> bool: ...

    async def set_messages(self, messages: Sequence[tuple[Sequence[int], str]], lease: float) -> None: ...

    async def undispatch(self, ids: Sequence[int], lease: float) -> list[Job]: ...

    async def accept(self, ids: Sequence[int], worker: str, lease: float) -> list[Job]: ...

    async def get(self, job_id: int) -> Job | None: ...

    async def get_many(self, ids: Sequence[int]) -> list[Job]: ...

    async def extend_leases(self, claims: Sequence[Job], lease: float) -> None: ...

    async def rescue(self, worker_timeout: float | None = None) -> list[Transition]: ...

    async def fail(
        self,
        claims: Sequence[Job],
        error: str,
        *,
        retryable: bool,
        base_seconds: float,
        max_seconds: float,
        min_delay_seconds: float = 0.0,
        redelivery_seconds: float | None = None,
        cause: FailureCause | None = None,
    ) -> list[Transition]: ...

    async def undelivered(self, message_id: str, reason: str, job_ids: Sequence[int] = ()) -> list[Transition]: ...

    async def requeue(self, ids: Sequence[int]) -> list[Requeued]: ...

    async def cancel(self, job_id: int) -> Job | None: ...

    async def recent(self, status: JobStatus, limit: int) -> list[Job]: ...

    async def sources(self) -> dict[str, Source]: ...

    async def source_rows(self, content_type: str, source_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    async def stored_hashes(self, model: str, keys: Sequence[Key]) -> dict[Key, dict[int, str]]: ...

    async def complete(self, claims: Sequence[Job], model: str, writes: Mapping[Key, SourceWrite]) -> set[int]: ...

    async def ensure_model(self, name: str, provider: str, dimensions: int) -> Model: ...

    async def index_state(self, model: str) -> str: ...

    async def has_vectors_at_least(self, model: str, count: int) -> bool: ...

    async def build_index(self, model: str) -> str | None: ...

    async def announce_worker(self, name: str, mode: str, breaker: str, *, role: str = "listener") -> None: ...

    async def note_problem(self, worker: str, problem: str) -> None: ...

    async def forget_worker(self, name: str) -> None: ...

    async def queue_counts(self) -> list[QueueCount]: ...

    async def oldest_pending_age(self) -> float | None: ...


class JobStore:
    """The store on PostgreSQL, through an asyncpg pool (connections name themselves)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ingest(self) -> int:
        return await self.pool.fetchval(query("jobs_ingest"))

    async def claim(
        self,
        worker: str,
        limit: int,
        *,
        lease: float,
        max_attempts: int,
        model: str | None,
        to: JobStatus = JobStatus.PROCESSING,
        priorities: PriorityRange | None = None,
    ) -> list[Job]:
        """Up to `limit` runnable jobs, most urgent first; only of `priorities` when given."""
        name = "jobs_claim" if to is JobStatus.PROCESSING else "jobs_claim_dispatch"
        first, last = priorities or (None, None)
        rows = await self.pool.fetch(query(name), worker, limit, lease, max_attempts, model, first, last)
        return [Job.from_record(r) for r in rows]

    async def in_flight_by_priority(self) -> dict[int, int]:
        """Jobs claimed and not ended yet (dispatched or processing), by priority."""
        return {r["priority"]: r["jobs"] for r in await self.pool.fetch(query("jobs_in_flight_by_priority"))}

    async def has_runnable(self, priorities: PriorityRange) -> bool:
        """Whether a job of these priorities could be claimed now (any model, busy rows included)."""
        return await self.pool.fetchval(query("jobs_runnable_within"), *priorities)

    async def set_messages(self, messages: Sequence[tuple[Sequence[int], str]], lease: float) -> None:
        """Record the QStash message that carries each group of dispatched jobs, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            for ids, message_id in messages:
                await conn.execute(query("jobs_set_message"), list(ids), message_id, lease)

    async def undispatch(self, ids: Sequence[int], lease: float) -> list[Job]:
        return [Job.from_record(r) for r in await self.pool.fetch(query("jobs_undispatch"), list(ids), lease)]

    async def accept(self, ids: Sequence[int], worker: str, lease: float) -> list[Job]:
        return [Job.from_record(r) for r in await self.pool.fetch(query("jobs_accept"), list(ids), worker, lease)]

    async def get(self, job_id: int) -> Job | None:
        record = await self.pool.fetchrow(query("jobs_get"), job_id)
        return None if record is None else Job.from_record(record)

    async def get_many(self, ids: Sequence[int]) -> list[Job]:
        return [Job.from_record(r) for r in await self.pool.fetch(query("jobs_get_many"), list(ids))]

    async def extend_leases(self, claims: Sequence[Job], lease: float) -> None:
        await self.pool.execute(query("jobs_extend_lease"), [j.id for j in claims], [j.attempts for j in claims], lease)

    async def rescue(self, worker_timeout: float | None = None) -> list[Transition]:
        """Jobs whose lease expired, and (with worker_timeout, in seconds) the jobs in hand of workers
        unseen for that long, back to the queue: `failed`, or `dead` out of attempts."""
        rows = await self.pool.fetch(query("jobs_rescue"), worker_timeout)
        return [Transition(r["id"], JobStatus(r["status"])) for r in rows]

    async def fail(
        self,
        claims: Sequence[Job],
        error: str,
        *,
        retryable: bool,
        base_seconds: float,
        max_seconds: float,
        min_delay_seconds: float = 0.0,
        redelivery_seconds: float | None = None,
        cause: FailureCause | None = None,
    ) -> list[Transition]:
        rows = await self.pool.fetch(
            query("jobs_fail"),
            [j.id for j in claims],
            [j.attempts for j in claims],
            error,
            retryable,
            base_seconds,
            max_seconds,
            min_delay_seconds,
            redelivery_seconds,
            None if cause is None else cause.value,
        )
        return [Transition(r["id"], JobStatus(r["status"])) for r in rows]

    async def undelivered(self, message_id: str, reason: str, job_ids: Sequence[int] = ()) -> list[Transition]:
        """QStash ended a message without an outcome (reason: why): its jobs still waiting for it
        count a failed delivery and an attempt, and go back to the queue (or die out of attempts).
        job_ids (the message's body) also finds them if the message id was never recorded."""
        rows = await self.pool.fetch(query("jobs_undelivered"), message_id, reason, list(job_ids))
        return [Transition(r["id"], JobStatus(r["status"])) for r in rows]

    async def requeue(self, ids: Sequence[int]) -> list[Requeued]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(query("jobs_requeue"), list(ids))
        return [Requeued(r["id"], JobStatus(r["status"]), r["merged_into"]) for r in rows]

    async def cancel(self, job_id: int) -> Job | None:
        record = await self.pool.fetchrow(query("jobs_cancel"), job_id)
        return None if record is None else Job.from_record(record)

    async def recent(self, status: JobStatus, limit: int) -> list[Job]:
        return [Job.from_record(r) for r in await self.pool.fetch(query("jobs_recent"), status.value, limit)]

    async def sources(self) -> dict[str, Source]:
        return {r["content_type"]: Source.from_record(r) for r in await self.pool.fetch(query("sources_list"))}

    async def source_rows(self, content_type: str, source_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        records = await self.pool.fetch(query("source_rows"), content_type, list(source_ids))
        return {r["source_id"]: r["fields"] for r in records}

    async def stored_hashes(self, model: str, keys: Sequence[Key]) -> dict[Key, dict[int, str]]:
        stored: dict[Key, dict[int, str]] = {}
        if not keys:
            return stored
        records = await self.pool.fetch(query("embeddings_hashes"), model, [k[0] for k in keys], [k[1] for k in keys])
        for r in records:
            stored.setdefault((r["content_type"], r["source_id"]), {})[r["chunk_index"]] = r["content_hash"]
        return stored

    async def complete(self, claims: Sequence[Job], model: str, writes: Mapping[Key, SourceWrite]) -> set[int]:
        """End the claims as done and write the vectors of their rows, in one transaction. A row's
        vectors are written only if at least one of its claims was still this worker's (a lost
        claim writes nothing). Returns the ids that were ended."""
        async with self.pool.acquire() as conn, conn.transaction():
            confirmed = {
                r[0]
                for r in await conn.fetch(query("jobs_complete"), [j.id for j in claims], [j.attempts for j in claims])
            }
            mine = {j.key for j in claims if j.id in confirmed}
            upserts = [
                (key, chunk)
                for key, write in writes.items()
                if key in mine and not write.deleted
                for chunk in write.chunks
            ]
            if upserts:
                await conn.execute(
                    query("embeddings_upsert"),
                    model,
                    [key[0] for key, _ in upserts],
                    [key[1] for key, _ in upserts],
                    [c.index for _, c in upserts],
                    [Vector(c.vector) for _, c in upserts],
                    [c.content_hash for _, c in upserts],
                    [c.content for _, c in upserts],
                    [c.metadata for _, c in upserts],
                )
            # only rows that keep some of their chunks: chunks written above carry it already
            restamped = [
                (key, w.metadata)
                for key, w in writes.items()
                if key in mine and not w.deleted and w.metadata is not None and len(w.chunks) < w.chunk_count
            ]
            if restamped:
                await conn.execute(
                    query("embeddings_set_metadata"),
                    model,
                    [k[0] for k, _ in restamped],
                    [k[1] for k, _ in restamped],
                    [m for _, m in restamped],
                )
            kept = [(key, w.chunk_count) for key, w in writes.items() if key in mine and not w.deleted]
            if kept:
                await conn.execute(
                    query("embeddings_trim"),
                    model,
                    [k[0] for k, _ in kept],
                    [k[1] for k, _ in kept],
                    [n for _, n in kept],
                )
            gone = [key for key, w in writes.items() if key in mine and w.deleted]
            if gone:
                await conn.execute(query("embeddings_delete_sources"), [k[0] for k in gone], [k[1] for k in gone])
        return confirmed

    async def ensure_model(self, name: str, provider: str, dimensions: int) -> Model:
        return Model.from_record(await self.pool.fetchrow(query("models_ensure"), name, provider, dimensions))

    async def index_state(self, model: str) -> str:
        """The model's HNSW index: 'ready', 'invalid' (a failed or running concurrent build) or 'missing'."""
        return await self.pool.fetchval(query("models_index_state"), model)

    async def has_vectors_at_least(self, model: str, count: int) -> bool:
        return await self.pool.fetchval(query("models_has_vectors_at_least"), model, count)

    async def build_index(self, model: str) -> str | None:
        """Build the model's HNSW index (CONCURRENTLY: writers and searches go on meanwhile),
        dropping an invalid one left by a failed build first. None when another listener is
        building it; otherwise the index state afterwards."""
        async with self.pool.acquire() as conn:
            if not await conn.fetchval(query("models_index_lock"), model):
                return None
            try:
                state = await conn.fetchval(query("models_index_state"), model)
                if state == "invalid":
                    await conn.execute(await conn.fetchval(query("models_index_drop_ddl"), model))
                if state != "ready":
                    await conn.execute(await conn.fetchval(query("models_index_ddl"), model))
                return await conn.fetchval(query("models_index_state"), model)
            finally:
                await conn.execute(query("models_index_unlock"), model)

    async def announce_worker(self, name: str, mode: str, breaker: str, *, role: str = "listener") -> None:
        await self.pool.execute(query("workers_announce"), name, mode, breaker, role)

    async def note_problem(self, worker: str, problem: str) -> None:
        """The last delivery problem this worker diagnosed (`embedq status` shows it for an hour)."""
        await self.pool.execute(query("workers_note_problem"), worker, problem)

    async def forget_worker(self, name: str) -> None:
        await self.pool.execute(query("workers_forget"), name)

    async def queue_counts(self) -> list[QueueCount]:
        rows = await self.pool.fetch(query("jobs_count_by_status_priority"))
        return [QueueCount(JobStatus(r["status"]), r["priority"], r["jobs"]) for r in rows]

    async def oldest_pending_age(self) -> float | None:
        return await self.pool.fetchval(query("jobs_oldest_pending_age"))


__all__ = [
    "ChunkWrite",
    "JobStore",
    "Key",
    "Model",
    "PriorityRange",
    "QueueCount",
    "Requeued",
    "Source",
    "SourceWrite",
    "Store",
    "Transition",
]
