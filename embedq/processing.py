"""Processing: claimed jobs in, vectors out. One code path for the listener and the webhook.

load rows (one query per content type) -> build text -> chunk -> hash -> embed what changed
-> in ONE transaction: end the jobs, upsert vectors, trim surplus chunks, delete vectors of
deleted rows. A job whose claim was lost (lease expired, cancelled) writes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from embedq import chunking, content, metrics
from embedq.db import CONNECTION_ERRORS, storable_text
from embedq.errors import PermanentError, ProcessingError, RetryableError
from embedq.jobs import FailureCause, Job, JobStatus
from embedq.metadata import row_metadata
from embedq.providers.base import Embedder
from embedq.settings import Settings
from embedq.store import ChunkWrite, Key, SourceWrite, Store

logger = logging.getLogger(__name__)


def content_hash(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode("utf-8", "replace")).hexdigest()


@dataclass
class Plan:
    """What one source needs: its chunks, and which of them must go to the provider."""

    key: Key
    chunks: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    to_embed: list[int] = field(default_factory=list)  # chunk indexes
    deleted: bool = False
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)  # embedq.metadata.row_metadata


@dataclass
class Outcome:
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # claims that were no longer ours
    #: the longest wait a provider asked for (Retry-After), if any failure carried one
    retry_after: float | None = None
    embedded_chunks: int = 0
    reused_chunks: int = 0
    deleted_sources: int = 0


def chunk_row(
    fields: Sequence[str], template: str | None, values: dict, embedder: Embedder, settings: Settings
) -> tuple[list[str], list[str]]:
    """A row's chunks and their hashes, exactly as processing embeds them (verify compares
    against the same). `fields` and `template` are the source's registration. Raises ValueError,
    TypeError or UnicodeError for a row it cannot read."""
    max_tokens = min(settings.chunk_tokens, embedder.max_input_tokens)
    text = content.build_text(fields, values, template)
    chunks = chunking.chunk_text(
        text, max_tokens, min(settings.chunk_overlap_tokens, max_tokens // 4), embedder.count_tokens
    )
    return chunks, [content_hash(embedder.model, c) for c in chunks]


def observe_write_to_vector(done: Sequence[Job]) -> None:
    """embedq_write_to_vector_seconds{priority}: from the row's write (the job's created_at, its
    first write when edits coalesced) to now, just after its vectors were committed."""
    committed = datetime.now(UTC)
    for job in done:
        seconds = max((committed - job.created_at).total_seconds(), 0.0)  # the database's clock may be ahead
        metrics.WRITE_TO_VECTOR_SECONDS.labels(str(job.priority)).observe(seconds)


#: Retry-After for jobs whose failure could not be recorded (the database is away)
UNRECORDED_RETRY_AFTER_SECONDS = 5.0


class Processor:
    """redelivery_seconds: set by the webhook. A retryable failure then leaves the jobs
    `dispatched` for that long, because QStash redelivers the message itself."""

    def __init__(
        self, store: Store, embedder: Embedder, settings: Settings, redelivery_seconds: float | None = None
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.redelivery_seconds = redelivery_seconds

    async def process(self, jobs: Sequence[Job]) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome()
        by_key: dict[Key, list[Job]] = defaultdict(list)
        for job in jobs:
            by_key[job.key].append(job)
        failures: dict[Key, ProcessingError] = {}

        try:
            plans = await self._plan(by_key, failures)
            await self._embed(plans, failures)
            await self._write(plans, by_key, failures, outcome)
        except CONNECTION_ERRORS as exc:
            # The database went away mid-batch: nothing was written; the leases expire and the
            # rescuer returns the jobs. Try to record it now in case the pool recovers.
            error = RetryableError(f"database unavailable: {exc}")
            failures = {key: error for key in by_key}
            outcome = Outcome()
        await self._record_failures(by_key, failures, outcome)
        metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)
        for name, ids in (
            ("done", outcome.done),
            ("failed", outcome.failed),
            ("dead", outcome.dead),
            ("lost", outcome.lost),
        ):
            if ids:
                metrics.JOBS_FINISHED.labels(name).inc(len(ids))
        logger.info(
            "jobs processed",
            extra={
                "action": "process",
                "job_ids": [j.id for j in jobs],
                "done": len(outcome.done),
                "failed": len(outcome.failed),
                "dead": len(outcome.dead),
                "lost": len(outcome.lost),
                "embedded_chunks": outcome.embedded_chunks,
                "reused_chunks": outcome.reused_chunks,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return outcome

    async def _plan(self, by_key: dict[Key, list[Job]], failures: dict[Key, ProcessingError]) -> dict[Key, Plan]:
        sources = await self.store.sources()
        ids_by_type: dict[str, list[str]] = defaultdict(list)
        for (content_type, source_id), jobs in by_key.items():
            other_model = next((j.model for j in jobs if j.model not in (None, self.embedder.model)), None)
            if other_model is not None:
                failures[(content_type, source_id)] = PermanentError(
                    f"job queued for model {other_model!r} reached a worker embedding with "
                    f"{self.embedder.model!r}: run it where EMBEDQ_MODEL={other_model}",
                    cause=FailureCause.WRONG_MODEL,
                )
            elif content_type not in sources:
                failures[(content_type, source_id)] = PermanentError(
                    f"unknown content type {content_type!r}: it is not registered", cause=FailureCause.UNREGISTERED
                )
            else:
                ids_by_type[content_type].append(source_id)
        rows: dict[Key, dict] = {}
        for content_type, ids in ids_by_type.items():
            for source_id, values in (await self.store.source_rows(content_type, ids)).items():
                rows[(content_type, source_id)] = values
        keys = [key for key in by_key if key not in failures]
        existing = await self.store.stored_hashes(self.embedder.model, keys)

        def build() -> dict[Key, Plan]:
            plans: dict[Key, Plan] = {}
            for key in keys:
                plan = Plan(key)
                values = rows.get(key)
                if values is None:
                    plan.deleted = True
                else:
                    try:
                        source = sources[key[0]]
                        plan.chunks, plan.hashes = chunk_row(
                            source.fields, source.template, values, self.embedder, self.settings
                        )
                    except (ValueError, TypeError, UnicodeError) as exc:
                        failures[key] = PermanentError(
                            f"cannot build the text of {key[0]} {key[1]}: {exc}", cause=FailureCause.BAD_INPUT
                        )
                        continue
                    stored = existing.get(key, {})
                    plan.to_embed = [i for i, h in enumerate(plan.hashes) if stored.get(i) != h]
                    plan.metadata = row_metadata(len(plan.chunks), source.filters, values)
                plans[key] = plan
            return plans

        # Building and chunking a 1 MB text takes a while: keep the event loop free.
        return await asyncio.to_thread(build)

    async def _embed(self, plans: dict[Key, Plan], failures: dict[Key, ProcessingError]) -> None:
        wanted = [(plan, i) for plan in plans.values() for i in plan.to_embed]
        if not wanted:
            return
        try:
            with metrics.PROVIDER_SECONDS.time():
                vectors = await self.embedder.embed_documents([plan.chunks[i] for plan, i in wanted])
        except PermanentError as exc:
            if len({plan.key for plan, _ in wanted}) == 1:
                failures[wanted[0][0].key] = exc
                return
            # One bad text must not sink the whole batch: find it, source by source.
            for plan in plans.values():
                if plan.to_embed:
                    await self._embed_one(plan, failures)
            return
        except RetryableError as exc:
            for plan, _ in wanted:
                failures[plan.key] = exc
            return
        self._accept(wanted, vectors, failures)

    async def _embed_one(self, plan: Plan, failures: dict[Key, ProcessingError]) -> None:
        wanted = [(plan, i) for i in plan.to_embed]
        try:
            with metrics.PROVIDER_SECONDS.time():
                vectors = await self.embedder.embed_documents([plan.chunks[i] for i in plan.to_embed])
        except ProcessingError as exc:
            failures[plan.key] = exc
            return
        self._accept(wanted, vectors, failures)

    def _accept(
        self, wanted: list[tuple[Plan, int]], vectors: np.ndarray, failures: dict[Key, ProcessingError]
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(wanted), self.embedder.dimensions):
            error = PermanentError(
                f"the provider returned vectors of shape {vectors.shape}, expected "
                f"({len(wanted)}, {self.embedder.dimensions})",
                cause=FailureCause.DIMENSIONS,
            )
            for plan, _ in wanted:
                failures[plan.key] = error
            return
        if not np.isfinite(vectors).all():
            error = PermanentError(
                "the provider returned a vector with NaN or infinite values", cause=FailureCause.DIMENSIONS
            )
            for plan, _ in wanted:
                failures[plan.key] = error
            return
        for (plan, index), vector in zip(wanted, vectors, strict=True):
            plan.vectors[index] = vector

    async def _write(
        self,
        plans: dict[Key, Plan],
        by_key: dict[Key, list[Job]],
        failures: dict[Key, ProcessingError],
        outcome: Outcome,
    ) -> None:
        ready = [plan for key, plan in plans.items() if key not in failures]
        if not ready:
            return
        jobs = [job for plan in ready for job in by_key[plan.key]]
        writes = {
            plan.key: SourceWrite(
                chunk_count=len(plan.chunks),
                deleted=plan.deleted,
                chunks=[
                    ChunkWrite(i, plan.vectors[i], plan.hashes[i], plan.chunks[i], plan.metadata) for i in plan.to_embed
                ],
                metadata=plan.metadata,
            )
            for plan in ready
        }
        confirmed = await self.store.complete(jobs, self.embedder.model, writes)
        observe_write_to_vector([j for j in jobs if j.id in confirmed])
        outcome.done.extend(j.id for j in jobs if j.id in confirmed)
        outcome.lost.extend(j.id for j in jobs if j.id not in confirmed)
        mine = [plan for plan in ready if any(j.id in confirmed for j in by_key[plan.key])]
        kept = [plan for plan in mine if not plan.deleted]
        outcome.embedded_chunks += sum(len(p.to_embed) for p in kept)
        outcome.reused_chunks += sum(len(p.chunks) - len(p.to_embed) for p in kept)
        outcome.deleted_sources += sum(1 for plan in mine if plan.deleted)

    async def _record_failures(
        self, by_key: dict[Key, list[Job]], failures: dict[Key, ProcessingError], outcome: Outcome
    ) -> None:
        grouped: dict[tuple[str, bool, float, FailureCause], list[Job]] = defaultdict(list)
        for key, error in failures.items():
            retry_after = error.retry_after or 0.0
            grouped[(str(error), error.retryable, retry_after, error.cause)].extend(by_key[key])
        for (message, retryable, retry_after, cause), jobs in grouped.items():
            try:
                transitions = await self.store.fail(
                    jobs,
                    storable_text(message),
                    retryable=retryable,
                    base_seconds=self.settings.retry_base_seconds,
                    max_seconds=self.settings.retry_max_seconds,
                    min_delay_seconds=retry_after,
                    redelivery_seconds=self.redelivery_seconds,
                    cause=cause,
                )
            except CONNECTION_ERRORS as exc:
                logger.warning(
                    "could not record a failure; the leases will expire",
                    extra={"action": "fail", "job_ids": [j.id for j in jobs], "error": str(exc)},
                )
                # still failed, as far as the caller goes: the webhook must answer 503, not 200
                outcome.failed.extend(j.id for j in jobs)
                outcome.retry_after = max(outcome.retry_after or 0.0, UNRECORDED_RETRY_AFTER_SECONDS)
                continue
            for transition in transitions:
                (outcome.dead if transition.status is JobStatus.DEAD else outcome.failed).append(transition.id)
            if retryable and retry_after:
                outcome.retry_after = max(outcome.retry_after or 0.0, retry_after)
            logger.warning(
                "jobs failed",
                extra={"action": "fail", "job_ids": [j.id for j in jobs], "retryable": retryable, "error": message},
            )
