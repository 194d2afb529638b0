"""Sinks: where claimed jobs go. The claim loop asks its sink what to claim (`plan()`), claims
it, and hands the jobs over (`take()`), whatever the sink does with them.

- LocalSink processes them in this process, extending their leases while it works (local mode).
- QStashSink publishes them: one /v2/batch call per claim, one message per batch of jobs of one
  priority (QStash bills per message and per delivery). It owns the circuit breaker: while
  QStash fails it asks for processing claims and hands them to its LocalSink, and a publish
  that fails hands its jobs there too (undispatched first, so they are processed here now).

Priorities hold under a backlog in both modes. Claims take the most urgent runnable jobs first.
In QStash mode each priority tier (EMBEDQ_QSTASH_TIERS) is claimed up to its own cap of jobs in
flight (EMBEDQ_DISPATCH_MAX_IN_FLIGHT) and published under its own flow-control key: a backlog
fills its own tier's cap and its own QStash lane, and an urgent job is published at once, into
a lane where it does not queue behind the backlog's messages.
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
from embedq.settings import PriorityTier, Settings
from embedq.store import PriorityRange, Store

logger = logging.getLogger(__name__)

#: how long a dispatch claim may take to publish (two QStash calls at most, each within
#: embedq.qstash.client.CALL_TIMEOUT); delivery then gets EMBEDQ_DISPATCH_TIMEOUT. A claim whose
#: answer never reached the listener (the database went away as it committed) is published again
#: after this lease.
PUBLISH_LEASE_SECONDS = 40.0
#: prefix of the flow-control keys, one per priority tier (`embedq-webhook-p1-2`): QStash runs at
#: most the tier's parallelism of deliveries of each key at once
FLOW_CONTROL_KEY = "embedq-webhook"
#: while a tier is at its cap, the listener looks for room this often: jobs ending at the
#: webhook make room, and wake no listener
CAPPED_RECHECK_SECONDS = 0.25


@dataclass(frozen=True)
class TierClaim:
    """Up to `limit` jobs of `priorities` (first, last; None: open)."""

    priorities: PriorityRange
    limit: int


@dataclass(frozen=True)
class ClaimPlan:
    """What a sink wants claimed next: up to `limit` jobs of any priority, or, with `tiers`,
    each tier's jobs up to its own limit."""

    limit: int
    lease: float
    to: JobStatus = JobStatus.PROCESSING
    #: a claim of low-priority jobs short of `limit` waits this long for more (0: never)
    batch_window: float = 0.0
    tiers: tuple[TierClaim, ...] = ()
    #: a tier at its cap holds runnable jobs back: claim again after this long even if nothing
    #: wakes the listener (and do not count the queue as drained)
    recheck: float | None = None

    def parts(self) -> tuple[TierClaim, ...]:
        """What to claim, most urgent first."""
        return self.tiers or (TierClaim((None, None), self.limit),)


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

    async def plan(self) -> ClaimPlan: ...

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

    async def plan(self) -> ClaimPlan:
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
        self.tiers = settings.qstash_tiers
        #: the tiers' priorities, the first and last left open so that no priority is ever left out
        self.claim_ranges: list[PriorityRange] = [
            (None if n == 0 else t.first, None if n == len(self.tiers) - 1 else t.last)
            for n, t in enumerate(self.tiers)
        ]

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

    async def plan(self) -> ClaimPlan:
        """Each tier up to its room under EMBEDQ_DISPATCH_MAX_IN_FLIGHT (counted over every
        listener: jobs dispatched or at a webhook), at most EMBEDQ_DISPATCH_BATCH at once."""
        if not self.circuit.allows_publish():
            return await self.local.plan()
        in_flight = await self.store.in_flight_by_priority()
        claims = []
        for priorities in self.claim_ranges:
            busy = sum(n for priority, n in in_flight.items() if _within(priority, priorities))
            room = max(self.settings.dispatch_max_in_flight - busy, 0)
            claims.append(TierClaim(priorities, min(room, self.settings.dispatch_batch)))
        held_back = False
        if any(c.limit == 0 for c in claims):
            await self.store.ingest()  # what the triggers queued counts too (claims ingest, this one may not)
            for claim in claims:
                held_back = held_back or (claim.limit == 0 and await self.store.has_runnable(claim.priorities))
        return ClaimPlan(
            self.settings.dispatch_batch,
            min(PUBLISH_LEASE_SECONDS, self.settings.dispatch_timeout),
            JobStatus.DISPATCHED,
            tiers=tuple(claims),
            recheck=CAPPED_RECHECK_SECONDS if held_back else None,
        )

    def tier_of(self, priority: int) -> PriorityTier:
        return next(t for t, r in zip(self.tiers, self.claim_ranges, strict=True) if _within(priority, r))

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
                "flow_control": self._flow_control(batch[0].priority),
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

    def _flow_control(self, priority: int) -> dict[str, Any]:
        """A message's jobs share one priority (message_batches): its tier's key and parallelism."""
        tier = self.tier_of(priority)
        return {"key": f"{FLOW_CONTROL_KEY}-{tier.name}", "parallelism": self.settings.tier_parallelism(tier)}

    async def aclose(self) -> None:
        await self.client.aclose()


def _within(priority: int, priorities: PriorityRange) -> bool:
    first, last = priorities
    return (first is None or priority >= first) and (last is None or priority <= last)
