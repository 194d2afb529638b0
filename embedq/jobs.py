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


class FailureCause(StrEnum):
    """Why a job died: mirror of the Postgres enum embedq.failure_cause (a test keeps them equal)."""

    #: QStash could not deliver its messages (the webhook down, refusing them, or elsewhere)
    DELIVERY = "delivery"
    #: a retryable failure outlasted the attempts: the provider or the database was away
    OUTAGE = "outage"
    #: the provider kept answering 429
    RATE_LIMIT = "rate_limit"
    #: the row's text cannot be built, or the provider refuses it
    BAD_INPUT = "bad_input"
    #: the provider's vectors have the wrong size, or NaN
    DIMENSIONS = "dimensions"
    #: the provider refused for good (credentials, a model it does not serve, ...)
    REJECTED = "rejected"
    #: the content type is not registered (any more)
    UNREGISTERED = "unregistered"
    #: the job is for a model this worker does not embed with
    WRONG_MODEL = "wrong_model"
    CANCELLED = "cancelled"
    #: its worker died (or lost its lease) in the middle of it, every attempt
    CRASH = "crash"


#: causes that may pass by themselves: the weekly retry requeues jobs that died of them
TRANSIENT_CAUSES = frozenset({FailureCause.DELIVERY, FailureCause.OUTAGE, FailureCause.RATE_LIMIT})


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
    #: why it died (dead jobs only)
    cause: FailureCause | None = None
    #: QStash messages of it that ended without an outcome
    failed_deliveries: int = 0

    @classmethod
    def from_record(cls, record: Any) -> Job:
        values = dict(record)
        values["op"] = JobOp(values["op"])
        values["status"] = JobStatus(values["status"])
        if values.get("cause") is not None:
            values["cause"] = FailureCause(values["cause"])
        return cls(**values)

    @property
    def key(self) -> tuple[str, str]:
        return (self.content_type, self.source_id)

    def as_json(self) -> dict[str, Any]:
        return {
            name: (value.isoformat() if isinstance(value, datetime) else value)
            for name, value in ((field, getattr(self, field)) for field in self.__dataclass_fields__)
        }
