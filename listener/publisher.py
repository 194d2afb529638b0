"""Publishers: where claimed jobs go. One I/O method each.

- QStashPublisher sends them to QStash, one message per batch of jobs of one priority, all the
  messages of a claim in one /v2/batch call (QStash bills per message and per delivery).
- LocalPublisher processes them in this process (local mode, and the fallback while QStash
  fails), extending their leases while it works.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from itertools import groupby
from typing import Protocol

import asyncpg
import httpx

from embedq import db, metrics
from embedq.errors import EmbedqError
from embedq.jobs import Job
from embedq.processing import Outcome, Processor
from embedq.queries import query
from embedq.settings import Settings

logger = logging.getLogger(__name__)


class PublishError(EmbedqError):
    """QStash did not take the messages (unreachable, 5xx, quota, bad token)."""


class Publisher(Protocol):
    async def publish(self, jobs: Sequence[Job]) -> Outcome | None: ...


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


def message_body(jobs: Sequence[Job]) -> dict:
    return {
        "jobs": [{"id": j.id, "content_type": j.content_type, "source_id": j.source_id, "op": str(j.op)} for j in jobs]
    }


class QStashPublisher:
    def __init__(self, settings: Settings, pool: asyncpg.Pool) -> None:
        from qstash import AsyncQStash

        if not settings.qstash_token or not settings.webhook_url:
            raise EmbedqError("QStash needs QSTASH_TOKEN and EMBEDQ_WEBHOOK_URL")
        self.settings = settings
        self.pool = pool
        # retry=False: the SDK would sleep ~30 s before giving up on an unreachable QStash;
        # our breaker decides instead, at once.
        self.client = AsyncQStash(settings.qstash_token, base_url=settings.qstash_url, retry=False)
        self.jobs_url = settings.public_url("/v1/jobs")
        self.failures_url = settings.public_url("/v1/failures")
        self.publish_calls = 0

    async def publish(self, jobs: Sequence[Job]) -> None:
        from qstash.errors import QStashError

        batches = message_batches(jobs, self.settings.jobs_per_message)
        requests = [
            {
                "url": self.jobs_url,
                "body": message_body(batch),
                "deduplication_id": deduplication_id(batch),
                "failure_callback": self.failures_url,
                "retries": self.settings.qstash_retries,
                "flow_control": {"key": "embedq-webhook", "parallelism": self.settings.qstash_parallelism},
            }
            for batch in batches
        ]
        self.publish_calls += 1
        try:
            responses = await self.client.message.batch_json(requests)
        except (QStashError, httpx.HTTPError, OSError) as exc:
            metrics.PUBLISH_CALLS.labels("failed").inc()
            raise PublishError(f"QStash did not accept {len(batches)} messages: {exc}") from exc
        metrics.PUBLISH_CALLS.labels("ok").inc()
        if len(responses) != len(batches):
            raise PublishError(f"QStash answered {len(responses)} results for {len(batches)} messages")
        async with self.pool.acquire() as conn, conn.transaction():
            for batch, response in zip(batches, responses, strict=True):
                await conn.execute(
                    query("jobs_set_message"),
                    [j.id for j in batch],
                    response.message_id,
                    self.settings.dispatch_timeout,
                )
        logger.info(
            "jobs published", extra={"action": "publish", "job_ids": [j.id for j in jobs], "messages": len(batches)}
        )

    async def aclose(self) -> None:
        await self.client.http._client.aclose()


class LocalPublisher:
    def __init__(self, processor: Processor, pool: asyncpg.Pool, lease_seconds: float) -> None:
        self.processor = processor
        self.pool = pool
        self.lease_seconds = lease_seconds

    async def publish(self, jobs: Sequence[Job]) -> Outcome:
        """Process, extending the leases every third of a lease: a 1 MB text on a small CPU can
        take longer than one lease, and must not be rescued (and started again) meanwhile."""
        work = asyncio.ensure_future(self.processor.process(jobs))
        ids, attempts = [j.id for j in jobs], [j.attempts for j in jobs]
        interval = max(self.lease_seconds / 3, 0.05)
        while True:
            done, _ = await asyncio.wait({work}, timeout=interval)
            if done:
                return work.result()
            try:
                await self.pool.execute(query("jobs_extend_lease"), ids, attempts, self.lease_seconds)
            except db.CONNECTION_ERRORS as exc:
                logger.warning("cannot extend leases", extra={"action": "heartbeat", "job_ids": ids, "error": str(exc)})
