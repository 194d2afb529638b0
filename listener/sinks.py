"""Sinks: where claimed jobs go. The claim loop asks its sink what to claim (`plan()`), claims
it, and hands the jobs over (`take()`), whatever the sink does with them.

- LocalSink processes them in this process, extending their leases while it works (local mode).
- QStashSink publishes them: one /v2/batch call per claim, one message per batch of jobs of one
  priority (QStash bills per message and per delivery). It owns the circuit breaker: while
  QStash fails it asks for processing claims and hands them to its LocalSink, and a publish
  that fails hands its jobs there too (undispatched first, so they are processed here now).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from embedq import db, metrics
from embedq.errors import EmbedqError
from embedq.jobs import Job, JobStatus
from embedq.listener.breaker import BreakerState, CircuitBreaker
from embedq.processing import Outcome, Processor
from embedq.qstash.client import PublishError, QStashCallError, QStashClient
from embedq.qstash.messages import deduplication_id, message_batches, message_body
from embedq.settings import Settings
from embedq.store import Store

logger = logging.getLogger(__name__)

#: how long a dispatch claim may take to publish; delivery then gets EMBEDQ_DISPATCH_TIMEOUT
PUBLISH_LEASE_SECONDS = 120.0
#: flow control key: QStash runs at most EMBEDQ_QSTASH_PARALLELISM deliveries of it at once
FLOW_CONTROL_KEY = "embedq-webhook"


@dataclass(frozen=True)
class ClaimPlan:
    """What a sink wants claimed next."""

    limit: int
    lease: float
    to: JobStatus = JobStatus.PROCESSING
    #: a claim of low-priority jobs short of `limit` waits this long for more (0: never)
    batch_window: float = 0.0


@dataclass
class SinkOutcome:
    """What became of the jobs a sink took."""

    #: jobs handed to QStash
    dispatched: int = 0
    #: what processing did to the jobs processed here (None: none were)
    processed: Outcome | None = None


class Sink(Protocol):
    @property
    def mode(self) -> str:
        """`local`, `qstash`, or `fallback` (QStash fails: processing here), as embedq.workers records it."""
        ...

    @property
    def breaker(self) -> BreakerState: ...

    def plan(self) -> ClaimPlan: ...

    async def take(self, jobs: Sequence[Job]) -> SinkOutcome: ...

    async def aclose(self) -> None: ...


class LocalSink:
    def __init__(
        self, processor: Processor, store: Store, *, batch_size: int, lease_seconds: float, batch_window: float = 0.0
    ) -> None:
        self.processor = processor
        self.store = store
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.batch_window = batch_window

    @property
    def mode(self) -> str:
        return "local"

    @property
    def breaker(self) -> BreakerState:
        return BreakerState.CLOSED

    def plan(self) -> ClaimPlan:
        return ClaimPlan(self.batch_size, self.lease_seconds, JobStatus.PROCESSING, self.batch_window)

    async def take(self, jobs: Sequence[Job]) -> SinkOutcome:
        """Process, extending the leases every third of a lease: a 1 MB text on a small CPU can
        take longer than one lease, and must not be rescued (and started again) meanwhile."""
        work = asyncio.ensure_future(self.processor.process(jobs))
        interval = max(self.lease_seconds / 3, 0.05)
        while True:
            done, _ = await asyncio.wait({work}, timeout=interval)
            if done:
                return SinkOutcome(processed=work.result())
            try:
                await self.store.extend_leases(jobs, self.lease_seconds)
            except db.CONNECTION_ERRORS as exc:
                logger.warning(
                    "cannot extend leases",
                    extra={"action": "heartbeat", "job_ids": [j.id for j in jobs], "error": str(exc)},
                )

    async def aclose(self) -> None:
        pass


class BatchPublisher(Protocol):
    """The part of embedq.qstash.client.QStashClient a sink uses (unit tests pass a fake)."""

    async def publish_batch(self, requests: list[dict[str, Any]]) -> list[str]: ...

    async def dead_letters(self, url: str) -> list[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


class QStashSink:
    def __init__(
        self,
        client: BatchPublisher,
        store: Store,
        settings: Settings,
        local: LocalSink,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not settings.webhook_url:
            raise EmbedqError("QStash needs EMBEDQ_WEBHOOK_URL")
        self.client = client
        self.store = store
        self.settings = settings
        self.local = local
        self.circuit = breaker or CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        self.jobs_url = settings.public_url("/v1/jobs")
        self.failures_url = settings.public_url("/v1/failures")

    @classmethod
    def from_settings(cls, settings: Settings, store: Store, local: LocalSink) -> QStashSink:
        return cls(QStashClient.from_settings(settings), store, settings, local)

    @property
    def mode(self) -> str:
        return "fallback" if self.circuit.state is BreakerState.OPEN else "qstash"

    async def check(self) -> None:
        """At start, ask QStash once (a read of its DLQ). Unreachable, rate limited, or refusing
        the token: say so in one line and process jobs here from the start; the breaker's
        cool-down then decides when to try QStash again."""
        try:
            await self.client.dead_letters(self.jobs_url or "")
        except QStashCallError as exc:
            self.circuit.trip()
            metrics.BREAKER_OPEN.set(1)
            logger.warning(
                f"{exc.hint}: processing jobs here, trying QStash again every {self.circuit.cool_down:g} s",
                extra={"action": "qstash_check", "problem": exc.problem, "error": str(exc)},
            )

    @property
    def breaker(self) -> BreakerState:
        return self.circuit.state

    def plan(self) -> ClaimPlan:
        if not self.circuit.allows_publish():
            return self.local.plan()
        return ClaimPlan(
            self.settings.dispatch_batch,
            min(PUBLISH_LEASE_SECONDS, self.settings.dispatch_timeout),
            JobStatus.DISPATCHED,
        )

    async def take(self, jobs: Sequence[Job]) -> SinkOutcome:
        to_publish = [j for j in jobs if j.status is JobStatus.DISPATCHED]
        to_process = [j for j in jobs if j.status is JobStatus.PROCESSING]
        outcome = SinkOutcome()
        undeliverable = [j for j in to_publish if j.failed_deliveries >= self.settings.max_failed_deliveries]
        if undeliverable:
            # every delivery ends: QStash could not deliver these often enough (their last_error
            # says why); they are processed here rather than published again
            logger.warning(
                "QStash could not deliver these jobs; processing them here",
                extra={
                    "action": "undeliverable",
                    "job_ids": [j.id for j in undeliverable],
                    "error": undeliverable[0].last_error,
                },
            )
            to_publish = [j for j in to_publish if j.failed_deliveries < self.settings.max_failed_deliveries]
            to_process += await self.store.undispatch([j.id for j in undeliverable], self.local.lease_seconds)
        if to_publish:
            try:
                await self._publish(to_publish)
            except PublishError as exc:
                # the first failure in a row is news; the next ones (and failed trial publishes)
                # only confirm it, and the mode change is announced by the heartbeat
                news = self.circuit.state is BreakerState.CLOSED and self.circuit.consecutive_failures == 0
                self._record(published=False)
                logger.log(
                    logging.WARNING if news else logging.INFO,
                    "publish failed; processing the jobs here",
                    extra={
                        "action": "publish",
                        "job_ids": [j.id for j in to_publish],
                        "error": str(exc),
                        "breaker": self.circuit.state.value,
                    },
                )
                # claimed for processing here instead (one more attempt); a job the rescuer or
                # an operator took meanwhile is no longer dispatched and is left alone
                to_process += await self.store.undispatch([j.id for j in to_publish], self.local.lease_seconds)
            else:
                self._record(published=True)
                outcome.dispatched = len(to_publish)
        if to_process:
            outcome.processed = (await self.local.take(to_process)).processed
        return outcome

    def _record(self, *, published: bool) -> None:
        if published:
            self.circuit.record_success()
        else:
            self.circuit.record_failure()
        metrics.BREAKER_OPEN.set(1 if self.circuit.state is BreakerState.OPEN else 0)

    async def _publish(self, jobs: Sequence[Job]) -> None:
        batches = message_batches(jobs, self.settings.jobs_per_message)
        requests = [
            {
                "url": self.jobs_url,
                "body": message_body(batch),
                "deduplication_id": deduplication_id(batch),
                "failure_callback": self.failures_url,
                "retries": self.settings.qstash_retries,
                "flow_control": {"key": FLOW_CONTROL_KEY, "parallelism": self.settings.qstash_parallelism},
            }
            for batch in batches
        ]
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
