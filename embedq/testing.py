"""Fakes for tests and benchmarks (procrastinate's testing.py in spirit).

`HashEmbedder` costs nothing: deterministic unit vectors from a hash of the text, so the
database path can be measured and tested without a model.

`InMemoryJobStore` keeps the promises of `embedq.store.JobStore` (the SQL of
sql/functions/jobs.sql) in dictionaries, with an injectable clock, so the claim loop, the
sinks and the webhook's answers run as plain code. tests/integration/test_store_contract.py
runs the same scenarios on both, so the fake stays faithful. `write_row`/`delete_row` play the
triggers: they change a row and queue its change as the statement-level triggers do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from embedq.errors import PermanentError, RetryableError
from embedq.jobs import FailureCause, Job, JobOp, JobStatus
from embedq.store import Key, Model, PriorityRange, QueueCount, Requeued, Source, SourceWrite, Transition


class HashEmbedder:
    provider = "test"
    max_input_tokens = 10_000

    def __init__(self, model: str = "hash-test", dimensions: int = 16) -> None:
        self.model = model
        self.dimensions = dimensions
        self.calls: list[list[str]] = []
        self.fail_next: list[Exception] = []
        self.poison_marker: str | None = None

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def vector(self, text: str) -> np.ndarray:
        digest = hashlib.shake_256(text.encode("utf-8", "replace")).digest(2 * self.dimensions)
        vec = np.frombuffer(digest, dtype="<u2").astype(np.float32) - 32767.5
        return vec / np.linalg.norm(vec)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if self.fail_next:
            raise self.fail_next.pop(0)
        if self.poison_marker and any(self.poison_marker in t for t in texts):
            raise PermanentError(f"input contains {self.poison_marker!r}")
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts])

    async def embed_query(self, text: str) -> np.ndarray:
        return self.vector(text)


class CountingEmbedder:
    """Wraps a real embedder and counts provider calls and texts."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model = inner.model
        self.provider = inner.provider
        self.dimensions = inner.dimensions
        self.max_input_tokens = inner.max_input_tokens
        self.document_calls = 0
        self.documents: list[str] = []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.document_calls += 1
        self.documents.extend(texts)
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> np.ndarray:
        return await self.inner.embed_query(text)


IN_FLIGHT = (JobStatus.PROCESSING, JobStatus.DISPATCHED)
RUNNABLE = (JobStatus.PENDING, JobStatus.FAILED)
ENDED = (JobStatus.DONE, JobStatus.DEAD)
#: embedq.jobs.max_attempts' column default, before a claim sets the listener's
DEFAULT_MAX_ATTEMPTS = 5
#: what jobs_ingest moves per call
INGEST_MAX_ROWS = 1000
ERROR_MAX_CHARS = 2000


def utc_now() -> datetime:
    return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to: `InMemoryJobStore(clock=ManualClock())`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class InboxEntry:
    """A row of embedq.job_inbox: what one statement on a registered table touched."""

    id: int
    content_type: str
    op: JobOp
    priority: int
    source_ids: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class WorkerRow:
    """A row of embedq.workers."""

    name: str
    mode: str
    breaker: str
    role: str
    seen_at: datetime
    problem: str | None = None
    problem_at: datetime | None = None


@dataclass(frozen=True)
class StoredChunk:
    """A row of embedq.embeddings, without its key."""

    vector: np.ndarray
    content_hash: str
    content: str
    metadata: dict[str, Any]


class InMemoryJobStore:
    """The `embedq.store.Store` protocol in memory. Each method is one atomic step, as each SQL
    function is one statement; where SQL reads a snapshot (the claim's in-flight check), so
    does this."""

    def __init__(
        self,
        sources: Iterable[Source] = (),
        *,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        #: the backoff's jitter
        self.rng = rng or random.Random()
        self.registered: dict[str, Source] = {s.content_type: s for s in sources}
        #: the application's rows: content type -> source id -> column values
        self.rows: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.inbox: list[InboxEntry] = []
        self.jobs: dict[int, Job] = {}
        self.embeddings: dict[tuple[str, str, str, int], StoredChunk] = {}
        self.models: dict[str, Model] = {}
        #: announced workers (embedq.workers)
        self.workers: dict[str, WorkerRow] = {}
        #: PostgreSQL's pg_postmaster_start_time(): workers are not judged right after a restart
        self.server_started_at = clock()
        #: models whose HNSW index is built
        self.indexed: set[str] = set()
        self._job_ids = itertools.count(1)
        self._inbox_ids = itertools.count(1)
        self._row_ids: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))

    # -- the triggers, played -------------------------------------------------------------

    def register_source(self, source: Source) -> None:
        self.registered[source.content_type] = source

    def write_row(self, content_type: str, values: Mapping[str, Any], source_id: str | None = None) -> str:
        """Insert or update a row; its change is queued when an embedded field changed (the
        triggers' IS DISTINCT FROM). Returns its source id (the next integer for a new row)."""
        source = self.registered[content_type]
        if source_id is None:
            source_id = str(next(self._row_ids[content_type]))
        old = self.rows[content_type].get(source_id)
        row = {**(old or {}), **values}
        self.rows[content_type][source_id] = row
        if old is None or any(old.get(f) != row.get(f) for f in source.fields):
            self._queue_change(source, [source_id], JobOp.UPSERT)
        return source_id

    def delete_row(self, content_type: str, source_id: str) -> None:
        if self.rows[content_type].pop(source_id, None) is not None:
            self._queue_change(self.registered[content_type], [source_id], JobOp.DELETE)

    def _queue_change(self, source: Source, source_ids: list[str], op: JobOp) -> None:
        if source.enabled:
            entry = InboxEntry(
                next(self._inbox_ids), source.content_type, op, source.priority, tuple(source_ids), self.clock()
            )
            self.inbox.append(entry)

    def queue(
        self,
        content_type: str,
        source_ids: Sequence[str],
        op: JobOp = JobOp.UPSERT,
        priority: int = 3,
        model: str | None = None,
    ) -> int:
        """Jobs for explicit sources, coalesced with pending ones (embedq.jobs_queue)."""
        now = self.clock()
        for source_id in source_ids:
            self._upsert_pending((content_type, source_id), model, op, priority, now, now)
        return len(source_ids)

    def vectors(self, content_type: str, source_id: str, model: str) -> dict[int, StoredChunk]:
        """A row's stored chunks for a model, by chunk index."""
        return {
            key[3]: chunk
            for key, chunk in sorted(self.embeddings.items())
            if key[:3] == (content_type, source_id, model)
        }

    # -- the outbox -----------------------------------------------------------------------

    def _update(self, job: Job, now: datetime, **changes: Any) -> Job:
        """One row changed by a statement that began at `now` (PostgreSQL's now())."""
        changed = dataclasses.replace(job, updated_at=now, **changes)
        self.jobs[job.id] = changed
        return changed

    def _pending(self, key: Key, model: str | None) -> Job | None:
        return next(
            (j for j in self.jobs.values() if j.status is JobStatus.PENDING and j.key == key and j.model == model),
            None,
        )

    def _upsert_pending(
        self, key: Key, model: str | None, op: JobOp, priority: int, created_at: datetime, now: datetime
    ) -> None:
        pending = self._pending(key, model)
        if pending is not None:
            self._update(pending, now, op=op, priority=min(pending.priority, priority))
            return
        job_id = next(self._job_ids)
        self.jobs[job_id] = Job(
            id=job_id,
            content_type=key[0],
            source_id=key[1],
            op=op,
            priority=priority,
            status=JobStatus.PENDING,
            attempts=0,
            max_attempts=DEFAULT_MAX_ATTEMPTS,
            run_after=created_at,
            created_at=created_at,
            updated_at=now,
            finished_at=None,
            message_id=None,
            last_error=None,
            locked_by=None,
            lease_expires_at=None,
            model=model,
        )

    def _ingest(self) -> int:
        taken, self.inbox = self.inbox[:INGEST_MAX_ROWS], self.inbox[INGEST_MAX_ROWS:]
        touched: dict[Key, tuple[JobOp, int, datetime]] = {}
        for entry in taken:  # in id order: the latest operation wins
            for source_id in entry.source_ids:
                key = (entry.content_type, source_id)
                seen = touched.get(key)
                if seen is None:
                    touched[key] = (entry.op, entry.priority, entry.created_at)
                else:
                    touched[key] = (entry.op, min(seen[1], entry.priority), min(seen[2], entry.created_at))
        models: list[str | None] = [None, *(m.name for m in self.models.values() if m.maintained and not m.active)]
        now = self.clock()
        for key, (op, priority, created_at) in touched.items():
            for model in models:
                self._upsert_pending(key, model, op, priority, created_at, now)
        return len(touched) * len(models)

    async def ingest(self) -> int:
        return self._ingest()

    def _for_model(self, job: Job, model: str | None) -> bool:
        if model is None or job.model == model:
            return True
        return job.model is None and not any(m.active and m.name != model for m in self.models.values())

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
        if to not in IN_FLIGHT:
            raise ValueError(f"jobs are claimed for processing or dispatched, not {to}")
        self._ingest()
        now = self.clock()
        busy = {j.key for j in self.jobs.values() if j.status in IN_FLIGHT}
        first, last = priorities or (None, None)
        claimable = sorted(
            (
                j
                for j in self.jobs.values()
                if j.status in RUNNABLE
                and j.run_after <= now
                and (first is None or j.priority >= first)
                and (last is None or j.priority <= last)
                and self._for_model(j, model)
                and j.key not in busy
            ),
            key=lambda j: (j.priority, j.run_after, j.id),
        )[:limit]
        return [
            self._update(
                j,
                now,
                status=to,
                attempts=j.attempts + (to is JobStatus.PROCESSING),
                locked_by=worker,
                lease_expires_at=now + timedelta(seconds=lease),
                max_attempts=max_attempts if max_attempts is not None else j.max_attempts,
            )
            for j in claimable
        ]

    async def in_flight_by_priority(self) -> dict[int, int]:
        counts: dict[int, int] = defaultdict(int)
        for job in self.jobs.values():
            if job.status in IN_FLIGHT:
                counts[job.priority] += 1
        return dict(counts)

    async def has_runnable(self, priorities: PriorityRange) -> bool:
        now, (first, last) = self.clock(), priorities
        return any(
            j.status in RUNNABLE
            and j.run_after <= now
            and (first is None or j.priority >= first)
            and (last is None or j.priority <= last)
            for j in self.jobs.values()
        )

    async def set_messages(self, messages: Sequence[tuple[Sequence[int], str]], lease: float) -> None:
        now = self.clock()
        for ids, message_id in messages:
            for job_id in sorted(set(ids)):
                job = self.jobs.get(job_id)
                if job is None or not (job.status is JobStatus.DISPATCHED or job.message_id is None):
                    continue
                expires = now + timedelta(seconds=lease) if job.status is JobStatus.DISPATCHED else job.lease_expires_at
                self._update(job, now, message_id=message_id, lease_expires_at=expires)

    async def undispatch(self, ids: Sequence[int], lease: float) -> list[Job]:
        now = self.clock()
        expires = now + timedelta(seconds=lease)
        return [
            self._update(job, now, status=JobStatus.PROCESSING, attempts=job.attempts + 1, lease_expires_at=expires)
            for job in self._existing(ids)
            if job.status is JobStatus.DISPATCHED
        ]

    async def accept(self, ids: Sequence[int], worker: str, lease: float) -> list[Job]:
        now = self.clock()
        expires = now + timedelta(seconds=lease)
        busy = {j.key for j in self.jobs.values() if j.status is JobStatus.PROCESSING}
        acceptable = [
            job
            for job in self._existing(ids)
            if job.status in (JobStatus.DISPATCHED, *RUNNABLE) and job.key not in busy
        ]
        return [
            self._update(
                job,
                now,
                status=JobStatus.PROCESSING,
                attempts=job.attempts + 1,
                locked_by=worker,
                lease_expires_at=expires,
            )
            for job in acceptable
        ]

    def _existing(self, ids: Iterable[int]) -> list[Job]:
        return [self.jobs[i] for i in sorted(set(ids)) if i in self.jobs]

    def _claimed(self, claims: Sequence[Job], statuses: tuple[JobStatus, ...] = IN_FLIGHT) -> list[Job]:
        """The jobs whose claim (id, attempts) is still the caller's."""
        attempts = {c.id: c.attempts for c in claims}
        return [j for j in self._existing(attempts) if j.attempts == attempts[j.id] and j.status in statuses]

    async def get(self, job_id: int) -> Job | None:
        return self.jobs.get(job_id)

    async def get_many(self, ids: Sequence[int]) -> list[Job]:
        return self._existing(ids)

    async def extend_leases(self, claims: Sequence[Job], lease: float) -> None:
        now = self.clock()
        expires = now + timedelta(seconds=lease)
        for job in self._claimed(claims, (JobStatus.PROCESSING,)):
            self._update(job, now, lease_expires_at=expires)

    def _gone_workers(self, now: datetime, worker_timeout: float | None) -> list[str]:
        if worker_timeout is None or self.server_started_at >= now - timedelta(seconds=worker_timeout):
            return []
        return [w.name for w in self.workers.values() if w.seen_at < now - timedelta(seconds=worker_timeout)]

    async def rescue(self, worker_timeout: float | None = None) -> list[Transition]:
        now = self.clock()
        gone = self._gone_workers(now, worker_timeout)

        def gone_worker(job: Job) -> str | None:
            if job.status is not JobStatus.PROCESSING or job.locked_by is None:
                return None
            return next((g for g in gone if job.locked_by == g or job.locked_by.startswith(g + ":")), None)

        lost = [
            j
            for j in self.jobs.values()
            if j.status in IN_FLIGHT
            and ((j.lease_expires_at is not None and j.lease_expires_at < now) or gone_worker(j) is not None)
        ]
        transitions = []
        for job in lost:
            undelivered = int(job.status is JobStatus.DISPATCHED)
            retry = job.attempts + undelivered < job.max_attempts
            if undelivered and job.message_id is None:
                error = (
                    f"publishing by {job.locked_by or 'unknown'} did not finish "
                    "(its lease expired before the message was recorded)"
                )
            elif undelivered:
                error = (
                    f"QStash message {job.message_id}: no outcome within EMBEDQ_DISPATCH_TIMEOUT: no delivery, "
                    "no failure callback, no DLQ entry; is QStash delivering to EMBEDQ_WEBHOOK_URL?"
                )
            elif job.lease_expires_at is not None and job.lease_expires_at < now:
                error = f"lease expired while {job.status.value} by {job.locked_by or 'unknown'}"
            else:
                error = f"worker {job.locked_by} stopped heartbeating (unseen for {worker_timeout} s) while processing"
            changed = self._update(
                job,
                now,
                status=JobStatus.FAILED if retry else JobStatus.DEAD,
                finished_at=None if retry else now,
                cause=None if retry else (FailureCause.DELIVERY if undelivered else FailureCause.CRASH),
                attempts=job.attempts + undelivered,
                failed_deliveries=job.failed_deliveries + undelivered,
                run_after=now,
                last_error=error,
                lease_expires_at=None,
            )
            transitions.append(Transition(changed.id, changed.status))
        return transitions

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
        now = self.clock()
        transitions = []
        for job in self._claimed(claims):
            retry = retryable and job.attempts < job.max_attempts
            if not retry:
                status = JobStatus.DEAD
            elif redelivery_seconds is not None:
                status = JobStatus.DISPATCHED
            else:
                status = JobStatus.FAILED
            backoff = min(max_seconds, base_seconds * 2 ** max(job.attempts - 1, 0)) * self.rng.uniform(0.8, 1.2)
            changed = self._update(
                job,
                now,
                status=status,
                finished_at=None if retry else now,
                cause=None if retry else cause or (FailureCause.OUTAGE if retryable else FailureCause.REJECTED),
                run_after=now + timedelta(seconds=max(min_delay_seconds, backoff)),
                last_error=error[:ERROR_MAX_CHARS],
                lease_expires_at=(
                    now + timedelta(seconds=redelivery_seconds) if retry and redelivery_seconds is not None else None
                ),
            )
            transitions.append(Transition(changed.id, changed.status))
        return transitions

    async def undelivered(self, message_id: str, reason: str, job_ids: Sequence[int] = ()) -> list[Transition]:
        now = self.clock()
        named = set(job_ids)
        waiting = [
            j
            for j in self.jobs.values()
            if j.status is JobStatus.DISPATCHED
            and (j.message_id == message_id or (j.message_id is None and j.id in named))
        ]
        transitions = []
        for job in sorted(waiting, key=lambda j: j.id):
            retry = job.attempts + 1 < job.max_attempts
            changed = self._update(
                job,
                now,
                attempts=job.attempts + 1,
                failed_deliveries=job.failed_deliveries + 1,
                status=JobStatus.FAILED if retry else JobStatus.DEAD,
                finished_at=None if retry else now,
                cause=None if retry else FailureCause.DELIVERY,
                run_after=now,
                lease_expires_at=None,
                message_id=None,
                last_error=f"QStash message {message_id}: {reason}"[:ERROR_MAX_CHARS],
            )
            transitions.append(Transition(changed.id, changed.status))
        return transitions

    async def requeue(self, ids: Sequence[int]) -> list[Requeued]:
        now = self.clock()
        requeued = []
        for job in self._existing(ids):
            if job.status not in (JobStatus.DONE, JobStatus.DEAD, JobStatus.FAILED):
                continue
            pending = self._pending(job.key, job.model)
            if pending is None:
                self._update(
                    job,
                    now,
                    status=JobStatus.PENDING,
                    attempts=0,
                    failed_deliveries=0,
                    cause=None,
                    run_after=now,
                    finished_at=None,
                    message_id=None,
                    locked_by=None,
                )
                requeued.append(Requeued(job.id, JobStatus.PENDING, None))
            else:
                self._update(
                    pending, now, priority=min(pending.priority, job.priority), run_after=min(pending.run_after, now)
                )
                self._update(
                    job,
                    now,
                    status=JobStatus.DONE,
                    finished_at=now,
                    cause=None,
                    last_error=f"superseded by pending job {pending.id}",
                )
                requeued.append(Requeued(job.id, JobStatus.DONE, pending.id))
        return requeued

    async def cancel(self, job_id: int) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None or job.status in ENDED:
            return None
        now = self.clock()
        return self._update(
            job,
            now,
            status=JobStatus.DEAD,
            finished_at=now,
            lease_expires_at=None,
            last_error="cancelled by operator",
            cause=FailureCause.CANCELLED,
        )

    async def recent(self, status: JobStatus, limit: int) -> list[Job]:
        jobs = [j for j in self.jobs.values() if j.status is status]
        return sorted(jobs, key=lambda j: j.updated_at, reverse=True)[:limit]

    # -- rows and vectors -----------------------------------------------------------------

    async def sources(self) -> dict[str, Source]:
        return {s.content_type: s for s in sorted(self.registered.values(), key=lambda s: (s.priority, s.content_type))}

    async def source_rows(self, content_type: str, source_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        source = self.registered.get(content_type)
        if source is None:
            raise LookupError(f"embedq: content type {content_type!r} is not registered")
        rows = self.rows[content_type]
        return {i: {f: rows[i].get(f) for f in source.fields} for i in source_ids if i in rows}

    async def stored_hashes(self, model: str, keys: Sequence[Key]) -> dict[Key, dict[int, str]]:
        wanted = set(keys)
        stored: dict[Key, dict[int, str]] = {}
        for (content_type, source_id, chunk_model, index), chunk in self.embeddings.items():
            if chunk_model == model and (content_type, source_id) in wanted:
                stored.setdefault((content_type, source_id), {})[index] = chunk.content_hash
        return stored

    async def complete(self, claims: Sequence[Job], model: str, writes: Mapping[Key, SourceWrite]) -> set[int]:
        now = self.clock()
        confirmed = {
            self._update(job, now, status=JobStatus.DONE, finished_at=now, lease_expires_at=None, last_error=None).id
            for job in self._claimed(claims)
        }
        mine = {j.key for j in claims if j.id in confirmed}
        for key, write in writes.items():
            if key not in mine:
                continue
            if write.deleted:  # every model's vectors of the row, as embeddings_delete_sources does
                for stored in [k for k in self.embeddings if k[:2] == key]:
                    del self.embeddings[stored]
                continue
            for chunk in write.chunks:
                self.embeddings[(*key, model, chunk.index)] = StoredChunk(
                    np.asarray(chunk.vector, dtype=np.float32), chunk.content_hash, chunk.content, dict(chunk.metadata)
                )
            for stored in [k for k in self.embeddings if k[:3] == (*key, model) and k[3] >= write.chunk_count]:
                del self.embeddings[stored]
        return confirmed

    # -- models and workers ---------------------------------------------------------------

    async def ensure_model(self, name: str, provider: str, dimensions: int) -> Model:
        model = self.models.get(name)
        if model is not None and model.dimensions != dimensions:
            raise ValueError(f"embedq: model {name!r} is recorded with {model.dimensions} dimensions, not {dimensions}")
        if model is None:
            active = not any(m.active for m in self.models.values())
            model = self.models[name] = Model(name, provider, dimensions, active=active, maintained=False)
        return model

    async def index_state(self, model: str) -> str:
        return "ready" if model in self.indexed else "missing"

    async def has_vectors_at_least(self, model: str, count: int) -> bool:
        return sum(1 for key in self.embeddings if key[2] == model) >= count

    async def build_index(self, model: str) -> str | None:
        self.indexed.add(model)
        return "ready"

    async def announce_worker(self, name: str, mode: str, breaker: str, *, role: str = "listener") -> None:
        known = self.workers.get(name)
        problem = (known.problem, known.problem_at) if known else (None, None)
        self.workers[name] = WorkerRow(name, mode, breaker, role, self.clock(), *problem)

    async def note_problem(self, worker: str, problem: str) -> None:
        known = self.workers.get(worker)
        if known is not None:
            self.workers[worker] = dataclasses.replace(known, problem=problem, problem_at=self.clock())

    async def forget_worker(self, name: str) -> None:
        self.workers.pop(name, None)

    async def queue_counts(self) -> list[QueueCount]:
        counts: dict[tuple[JobStatus, int], int] = defaultdict(int)
        for job in self.jobs.values():
            counts[(job.status, job.priority)] += 1
        return [QueueCount(status, priority, n) for (status, priority), n in sorted(counts.items())]

    async def oldest_pending_age(self) -> float | None:
        pending = [j.created_at for j in self.jobs.values() if j.status is JobStatus.PENDING]
        return (self.clock() - min(pending)).total_seconds() if pending else None


__all__ = [
    "CountingEmbedder",
    "HashEmbedder",
    "InMemoryJobStore",
    "InboxEntry",
    "ManualClock",
    "PermanentError",
    "RetryableError",
    "StoredChunk",
    "WorkerRow",
]
