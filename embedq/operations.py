"""What operators do to jobs: look at one, cancel it, retry it; replay ended jobs chosen by a
filter; backfill every row of a content type. One implementation each, used by the CLI, the
Python API and the webhook's admin API.

What the job store offers (one job, requeue, cancel) goes through the `Store`, so it runs on
`InMemoryJobStore` too; choosing jobs by filter and backfilling take an asyncpg connection.
Failures a caller can cause raise NotFound (HTTP 404) or InvalidInput (HTTP 409 / 400), with a
message fit for one line.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from embedq import db, models
from embedq.errors import InvalidInput, NotFound
from embedq.jobs import Job, JobStatus
from embedq.qstash.deliveries import Undelivered
from embedq.queries import query
from embedq.settings import Settings
from embedq.store import Store, Transition

logger = logging.getLogger(__name__)

#: called with (done so far, total or None while unknown) after each batch of a long operation
Progress = Callable[[int, int | None], None]

REPLAYABLE = (JobStatus.FAILED, JobStatus.DEAD, JobStatus.DONE)
#: done jobs are replayed only when asked for by id or by status: re-embedding them costs money
REPLAYED_BY_DEFAULT = (JobStatus.FAILED, JobStatus.DEAD)
REPLAY_BATCH = 1_000
BACKFILL_BATCH = 5_000
#: the least urgent: live edits are never stuck behind a backfill
BACKFILL_PRIORITY = 9


# -- what QStash could not deliver ---------------------------------------------------------------
async def count_undelivered(store: Store, undelivered: Undelivered, reason: str) -> list[Transition]:
    """A QStash message ended without an outcome (its failure callback, or its DLQ entry): its jobs
    still waiting for it count a failed delivery, with `reason` as their error. The jobs changed;
    none when the message was reported before (callback and DLQ both) or its jobs ended since."""
    reason = db.storable_text(reason)
    transitions = await store.undelivered(undelivered.message_id, reason, undelivered.job_ids)
    if transitions:
        logger.warning(
            "QStash could not deliver a message",
            extra={
                "action": "undelivered",
                "message_id": undelivered.message_id,
                "job_ids": [t.id for t in transitions],
                "dead": [t.id for t in transitions if t.status is JobStatus.DEAD],
                "reason": reason,
            },
        )
    return transitions


# -- one job -----------------------------------------------------------------------------------


async def get_job(store: Store, job_id: int) -> Job:
    job = await store.get(job_id)
    if job is None:
        raise NotFound(f"job {job_id} does not exist")
    return job


async def cancel_job(store: Store, job_id: int) -> Job:
    """End a job that has not finished as `dead` (it stays replayable)."""
    cancelled = await store.cancel(job_id)
    if cancelled is None:
        job = await get_job(store, job_id)
        raise InvalidInput(f"job {job_id} is already {job.status}; only unfinished jobs can be cancelled")
    return cancelled


@dataclass(frozen=True)
class Retried:
    job: Job
    #: the pending job of the same row it was merged into (that one re-embeds the row as it is now)
    merged_into: int | None


async def retry_job(store: Store, job_id: int) -> Retried:
    """Queue a failed, dead or done job again, with its attempts cleared."""
    requeued = await store.requeue([job_id])
    if not requeued:
        job = await get_job(store, job_id)
        raise InvalidInput(f"job {job_id} is {job.status}; only failed, dead or done jobs can be retried")
    return Retried(await get_job(store, job_id), requeued[0].merged_into)


# -- replay ------------------------------------------------------------------------------------


def parse_instant(value: str | None, name: str) -> datetime | None:
    """An ISO date or time; without an offset it is taken as UTC. `name` says where it came from."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} {value!r} is not an ISO date or time (e.g. 2026-11-23T14:00:00+00:00)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReplayFilter:
    """Which ended jobs to replay. No statuses given: failed and dead, or also done when the jobs
    are named by id."""

    statuses: tuple[JobStatus, ...] = REPLAYED_BY_DEFAULT
    content_types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    job_ids: tuple[int, ...] = ()

    @classmethod
    def build(
        cls,
        statuses: Sequence[str] | None = None,
        content_types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        job_ids: Sequence[int] | None = None,
    ) -> ReplayFilter:
        chosen: tuple[JobStatus, ...]
        if statuses is None:
            chosen = REPLAYABLE if job_ids else REPLAYED_BY_DEFAULT
        else:
            names = [s.strip() for s in statuses if s.strip()]
            unknown = [s for s in names if s not in {r.value for r in REPLAYABLE}]
            if unknown or not names:
                raise InvalidInput(f"--status takes failed, dead and done, not {', '.join(unknown) or 'nothing'}")
            chosen = tuple(JobStatus(s) for s in dict.fromkeys(names))
        return cls(chosen, tuple(content_types or ()), since, until, tuple(job_ids or ()))


@dataclass(frozen=True)
class ReplayPlan:
    job_ids: list[int]
    #: (content_type, status) -> jobs
    counts: dict[tuple[str, str], int]

    def summary(self) -> list[dict[str, Any]]:
        return [{"content_type": t, "status": s, "jobs": n} for (t, s), n in sorted(self.counts.items())]


async def plan_replay(conn: asyncpg.Connection, chosen: ReplayFilter) -> ReplayPlan:
    rows = await conn.fetch(
        query("jobs_replay_candidates"),
        [s.value for s in chosen.statuses],
        list(chosen.content_types) or None,
        chosen.since,
        chosen.until,
        list(chosen.job_ids) or None,
    )
    return ReplayPlan([r["id"] for r in rows], dict(Counter((r["content_type"], r["status"]) for r in rows)))


@dataclass(frozen=True)
class Replayed:
    replayed: int
    #: merged into a pending job of the same row instead of queued again
    merged: int


async def replay(
    store: Store, job_ids: Sequence[int], progress: Progress | None = None, batch: int = REPLAY_BATCH
) -> Replayed:
    """Put ended jobs back in the queue, attempts cleared, in short transactions of `batch` jobs
    (each gets a fresh QStash deduplication id when dispatched again)."""
    replayed = merged = 0
    for start in range(0, len(job_ids), batch):
        done = await store.requeue(job_ids[start : start + batch])
        merged += sum(1 for r in done if r.merged_into is not None)
        replayed += len(done)
        if progress is not None:
            progress(min(start + batch, len(job_ids)), len(job_ids))
    return Replayed(replayed, merged)


# -- backfill ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backfilled:
    content_type: str
    queued: int
    #: the model asked for (None: the active one)
    model: str | None

    def as_json(self) -> dict[str, Any]:
        return {"content_type": self.content_type, "queued": self.queued, "model": self.model}


async def backfill(
    conn: asyncpg.Connection,
    content_type: str,
    *,
    priority: int = BACKFILL_PRIORITY,
    model: str | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
    batch: int = BACKFILL_BATCH,
) -> Backfilled:
    """Queue an upsert for every existing row of a content type, in key order and short
    transactions of `batch` rows (an interrupted backfill is simply run again). `model`: fill
    that model side by side with the active one (`settings` names the configured model, which is
    recorded if the database does not know it yet)."""
    source = await conn.fetchrow(query("sources_get"), content_type)
    if source is None:
        raise InvalidInput(f"unknown content type {content_type!r}")
    if not 1 <= priority <= 9:
        raise InvalidInput(f"priority must be between 1 and 9, not {priority}")
    job_model = await models.start_filling(conn, model, settings) if model is not None else None
    estimate = await conn.fetchval(query("sources_row_estimate"), source["table_name"]) or None
    if progress is not None:
        progress(0, estimate)
    queued, after = 0, None
    while True:
        row = await conn.fetchrow(query("backfill_batch"), content_type, after, batch, priority, job_model)
        if row["last_key"] is None:
            break
        queued += row["queued"]
        after = row["last_key"]
        if progress is not None:
            progress(queued, max(estimate or 0, queued))
    return Backfilled(content_type, queued, model)
