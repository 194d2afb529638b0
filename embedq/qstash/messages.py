"""The QStash message that carries jobs from the listener to the webhook: built and parsed here.

    {"jobs": [{"id": 12, "content_type": "course", "source_id": "42", "op": "upsert"}, ...]}

One message per batch of jobs of one priority (QStash bills per message and per delivery). The
webhook trusts only the ids: it reads each job's row from the outbox, so a message can never
make it embed something that was not queued.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from embedq.errors import InvalidInput
from embedq.jobs import Job

#: the largest job id a message may name: ids are PostgreSQL bigints
MAX_JOB_ID = 2**63 - 1
#: a message naming more jobs than this is refused (400) before anything is read
MAX_JOBS_PER_MESSAGE = 10_000


@dataclass(frozen=True)
class JobsMessage:
    job_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.job_ids) <= MAX_JOBS_PER_MESSAGE:
            raise InvalidInput(f'body must be {{"jobs": [...]}} with 1 to {MAX_JOBS_PER_MESSAGE} jobs')


def message_body(jobs: Sequence[Job]) -> dict[str, Any]:
    """The JSON body of one message (content type and source id are for people reading QStash's logs)."""
    return {
        "jobs": [{"id": j.id, "content_type": j.content_type, "source_id": j.source_id, "op": str(j.op)} for j in jobs]
    }


def parse_message(body: bytes) -> JobsMessage:
    """The job ids of a delivered message, or InvalidInput saying what is wrong (the webhook answers 400)."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"body is not JSON: {exc}") from None
    jobs = payload.get("jobs") if isinstance(payload, dict) else None
    if not isinstance(jobs, list) or not jobs or len(jobs) > MAX_JOBS_PER_MESSAGE:
        raise InvalidInput(f'body must be {{"jobs": [...]}} with 1 to {MAX_JOBS_PER_MESSAGE} jobs')
    ids = []
    for job in jobs:
        job_id = job.get("id") if isinstance(job, dict) else None
        if not isinstance(job_id, int) or isinstance(job_id, bool) or not 1 <= job_id <= MAX_JOB_ID:
            raise InvalidInput("every job needs a positive integer id (a bigint)")
        ids.append(job_id)
    return JobsMessage(tuple(ids))


def message_batches(jobs: Sequence[Job], per_message: int) -> list[list[Job]]:
    """Jobs grouped by priority, then cut into messages of at most per_message jobs."""
    batches: list[list[Job]] = []
    ordered = sorted(jobs, key=lambda j: (j.priority, j.id))
    for _, same_priority in groupby(ordered, key=lambda j: j.priority):
        group = list(same_priority)
        batches.extend(group[i : i + per_message] for i in range(0, len(group), per_message))
    return batches


def deduplication_id(jobs: Sequence[Job]) -> str:
    """Stable for one dispatch of these jobs (a publish retried after a lost answer is
    swallowed by QStash), new for any later one: a replay or a re-publish changes attempts or
    updated_at, and QStash would silently drop a message whose id it has seen."""
    material = ",".join(f"{j.id}:{j.attempts}:{j.updated_at.timestamp():.6f}" for j in sorted(jobs, key=lambda j: j.id))
    return "embedq-" + hashlib.sha256(material.encode()).hexdigest()[:40]
