"""Jobs: the outbox rows, their states, and the Python mirror of `embedq.job_status`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Mirror of the Postgres enum embedq.job_status (a test keeps them equal)."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"


class JobOp(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    content_type: str
    source_id: str
    op: JobOp
    priority: int
    status: JobStatus
    attempts: int
    max_attempts: int
    run_after: datetime
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    message_id: str | None
    last_error: str | None
    locked_by: str | None
    lease_expires_at: datetime | None
    #: None: for the active model; a name: for that model only (filled side by side)
    model: str | None = None

    @classmethod
    def from_record(cls, record: Any) -> Job:
        values = dict(record)
        values["op"] = JobOp(values["op"])
        values["status"] = JobStatus(values["status"])
        return cls(**values)

    @property
    def key(self) -> tuple[str, str]:
        return (self.content_type, self.source_id)

    def as_json(self) -> dict[str, Any]:
        return {
            name: (value.isoformat() if isinstance(value, datetime) else value)
            for name, value in ((field, getattr(self, field)) for field in self.__dataclass_fields__)
        }
