"""Publishers: where claimed jobs go. One I/O method each.

- QStashPublisher sends them to QStash, one message per batch of jobs of one priority, all the
  messages of a claim in one /v2/batch call (QStash bills per message and per delivery).
- LocalPublisher processes them in this process (local mode, and the fallback while QStash
  fails), extending their leases while it works.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from embedq import db, metrics
from embedq.errors import EmbedqError
from embedq.jobs import Job
from embedq.processing import Outcome, Processor
from embedq.qstash.client import PublishError, QStashClient
from embedq.qstash.messages import deduplication_id, message_batches, message_body
from embedq.settings import Settings
from embedq.store import Store

logger = logging.getLogger(__name__)


class Publisher(Protocol):
    async def publish(self, jobs: Sequence[Job]) -> Outcome | None: ...


class QStashPublisher:
    def __init__(self, settings: Settings, store: Store) -> None:
        if not settings.qstash_token or not settings.webhook_url:
            raise EmbedqError("QStash needs QSTASH_TOKEN and EMBEDQ_WEBHOOK_URL")
        self.settings = settings
        self.store = store
        self.client = QStashClient.from_settings(settings)
        self.jobs_url = settings.public_url("/v1/jobs")
        self.failures_url = settings.public_url("/v1/failures")
        self.publish_calls = 0

    async def publish(self, jobs: Sequence[Job]) -> None:
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
            message_ids = await self.client.publish_batch(requests)
        except PublishError:
            metrics.PUBLISH_CALLS.labels("failed").inc()
            raise
        metrics.PUBLISH_CALLS.labels("ok").inc()
        await self.store.set_messages(
            [([j.id for j in batch], message_id) for batch, message_id in zip(batches, message_ids, strict=True)],
            self.settings.dispatch_timeout,
        )
        logger.info(
            "jobs published", extra={"action": "publish", "job_ids": [j.id for j in jobs], "messages": len(batches)}
        )

    async def aclose(self) -> None:
        await self.client.aclose()


class LocalPublisher:
    def __init__(self, processor: Processor, store: Store, lease_seconds: float) -> None:
        self.processor = processor
        self.store = store
        self.lease_seconds = lease_seconds

    async def publish(self, jobs: Sequence[Job]) -> Outcome:
        """Process, extending the leases every third of a lease: a 1 MB text on a small CPU can
        take longer than one lease, and must not be rescued (and started again) meanwhile."""
        work = asyncio.ensure_future(self.processor.process(jobs))
        interval = max(self.lease_seconds / 3, 0.05)
        while True:
            done, _ = await asyncio.wait({work}, timeout=interval)
            if done:
                return work.result()
            try:
                await self.store.extend_leases(jobs, self.lease_seconds)
            except db.CONNECTION_ERRORS as exc:
                logger.warning(
                    "cannot extend leases",
                    extra={"action": "heartbeat", "job_ids": [j.id for j in jobs], "error": str(exc)},
                )
