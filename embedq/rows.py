"""Is this row's embedding current? One row's state, for applications (Client.row_status,
GET /v1/rows/{content_type}/{source_id}) and operators.

- queued: a change is waiting (in the inbox, pending, or waiting out a failure's backoff is
  `failed`, below);
- processing: a worker, or QStash, has it in hand;
- failed: the last attempt failed and another is scheduled (`last_error` says why);
- dead: it gave up (`last_error`); `embedq replay` or `embedq jobs retry` brings it back;
- current: its vectors match the row as of its last change;
- missing: no vectors and nothing queued (never written since registration: `embedq backfill`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from embedq.jobs import JobStatus
from embedq.queries import query


class RowState(StrEnum):
    CURRENT = "current"
    QUEUED = "queued"
    PROCESSING = "processing"
    FAILED = "failed"
    DEAD = "dead"
    MISSING = "missing"


_STATE_OF_UNFINISHED_JOB = {
    JobStatus.PENDING: RowState.QUEUED,
    JobStatus.FAILED: RowState.FAILED,
    JobStatus.PROCESSING: RowState.PROCESSING,
    JobStatus.DISPATCHED: RowState.PROCESSING,
}


@dataclass(frozen=True)
class RowStatus:
    content_type: str
    source_id: str
    state: RowState
    job_id: int | None = None
    job_status: JobStatus | None = None
    attempts: int | None = None
    last_error: str | None = None
    chunks: int = 0
    embedded_at: datetime | None = None

    @property
    def current(self) -> bool:
        return self.state is RowState.CURRENT

    def as_json(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "source_id": self.source_id,
            "state": self.state.value,
            "job_id": self.job_id,
            "job_status": None if self.job_status is None else self.job_status.value,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "chunks": self.chunks,
            "embedded_at": None if self.embedded_at is None else self.embedded_at.isoformat(),
        }


def row_state(*, in_inbox: bool, job_status: JobStatus | None, chunks: int) -> RowState:
    """The state from what the database holds (pure; tested by a table)."""
    if job_status in _STATE_OF_UNFINISHED_JOB:
        return _STATE_OF_UNFINISHED_JOB[job_status]
    if in_inbox:
        return RowState.QUEUED
    if job_status is JobStatus.DEAD:
        return RowState.DEAD
    return RowState.CURRENT if chunks else RowState.MISSING


async def row_status(conn: asyncpg.Connection | asyncpg.Pool, content_type: str, source_id: str) -> RowStatus:
    """Read-only: works on a replica too (a change still in the inbox counts as queued)."""
    record = await conn.fetchrow(query("rows_status"), content_type, str(source_id))
    job_status = None if record["job_status"] is None else JobStatus(record["job_status"])
    return RowStatus(
        content_type=content_type,
        source_id=str(source_id),
        state=row_state(in_inbox=record["in_inbox"], job_status=job_status, chunks=record["chunks"]),
        job_id=record["job_id"],
        job_status=job_status,
        attempts=record["attempts"],
        last_error=record["last_error"],
        chunks=record["chunks"],
        embedded_at=record["embedded_at"],
    )
