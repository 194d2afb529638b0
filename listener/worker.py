"""The claim-and-process loop.

Workers wake on a notification or on the poll timer (the safety net), drain the backlog at
start, and claim in priority order with SKIP LOCKED, so any number of listeners can run side
by side. Claims carry a lease; a crashed listener's jobs come back through the rescuer.
`stop()` (SIGTERM) lets each worker finish the batch in hand, then returns.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import asyncpg

from embedq import db, metrics
from embedq.jobs import Job, JobStatus
from embedq.listener.breaker import BreakerState, CircuitBreaker
from embedq.listener.indexer import ensure_index, run_indexer
from embedq.listener.publisher import LocalPublisher, QStashPublisher
from embedq.listener.rescuer import rescue_once, run_rescuer
from embedq.notify import Notifier
from embedq.processing import Outcome, Processor
from embedq.providers.base import Embedder
from embedq.qstash.client import PublishError
from embedq.settings import Settings
from embedq.store import JobStore
from embedq.workers import worker_name

logger = logging.getLogger(__name__)
#: how long a dispatch claim may take to publish; delivery then gets EMBEDQ_DISPATCH_TIMEOUT
PUBLISH_LEASE_SECONDS = 120.0


@dataclass(frozen=True)
class ListenerConfig:
    """The listener's knobs; defaults are the settings' defaults (embedq.settings)."""

    batch_size: int = Settings.batch_size
    #: low-priority batches wait this long for more jobs before they are processed
    batch_window: float = Settings.batch_window
    #: priorities at or above this number (less urgent) are batched for batch_window
    batch_window_min_priority: int = Settings.batch_window_min_priority
    poll_interval: float = Settings.poll_interval
    lease_seconds: float = Settings.lease_seconds
    rescue_interval: float = Settings.rescue_interval
    concurrency: int = Settings.concurrency
    max_attempts: int = Settings.max_attempts
    #: the model's HNSW index is built once it has this many vectors (listener/indexer.py)
    hnsw_min_rows: int = Settings.hnsw_min_rows

    @classmethod
    def from_settings(cls, settings: Settings) -> ListenerConfig:
        return cls(
            batch_size=settings.batch_size,
            batch_window=settings.batch_window,
            batch_window_min_priority=settings.batch_window_min_priority,
            poll_interval=settings.poll_interval,
            lease_seconds=settings.lease_seconds,
            rescue_interval=settings.rescue_interval,
            concurrency=settings.concurrency,
            hnsw_min_rows=settings.hnsw_min_rows,
            max_attempts=settings.max_attempts,
        )


@dataclass
class Totals:
    batches: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0
    embedded_chunks: int = 0
    dispatched: int = 0
    job_ids: list[int] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.batches += 1
        self.done += len(outcome.done)
        self.failed += len(outcome.failed)
        self.dead += len(outcome.dead)
        self.lost += len(outcome.lost)
        self.embedded_chunks += outcome.embedded_chunks
        self.job_ids.extend(outcome.done)


class Listener:
    """Local mode: claims jobs and processes them. QStash mode: claims jobs and publishes them,
    and processes them itself while the QStash breaker is open."""

    def __init__(
        self,
        dsn: str,
        embedder: Embedder,
        settings: Settings,
        config: ListenerConfig | None = None,
        *,
        name: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.embedder = embedder
        self.settings = settings
        self.config = config or ListenerConfig.from_settings(settings)
        self.name = name or worker_name()
        self.totals = Totals()
        self.pool: asyncpg.Pool | None = None
        self.store: JobStore | None = None
        self.publisher: QStashPublisher | None = None
        self.local: LocalPublisher | None = None
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._announced_mode: str | None = None

    @property
    def mode(self) -> str:
        if self.publisher is None:
            return "local"
        return "fallback" if self.breaker.state is BreakerState.OPEN else "qstash"

    def stop(self) -> None:
        """Finish the batches in hand, then return from run()."""
        self._stop.set()
        self._wake.set()

    async def run(self, *, drain: bool = False) -> Totals:
        app = self.settings.application_name
        self.pool = await db.create_pool(self.dsn, f"{app}-listener", min_size=1, max_size=self.config.concurrency + 3)
        self.store = store = JobStore(self.pool)
        self.local = LocalPublisher(Processor(store, self.embedder, self.settings), store, self.config.lease_seconds)
        if self.settings.qstash_enabled:
            self.publisher = QStashPublisher(self.settings, store)
        tasks: list[asyncio.Task] = []
        try:
            async with self.pool.acquire() as conn:
                await db.ensure_migrated(conn)
            model = await store.ensure_model(self.embedder.model, self.embedder.provider, self.embedder.dimensions)
            if not model.active and not model.maintained:
                logger.warning(
                    "this listener's model is neither the active one nor being filled: it only takes jobs "
                    f"queued for it (embedq backfill --model {model.name}); "
                    f"embedq models activate {model.name} makes it the active one",
                    extra={"action": "start", "model": model.name},
                )
            await self._announce()
            if not drain:
                notifier = Notifier(self.dsn, f"{app}-notify", lambda _payload: self._wake.set())
                tasks.append(asyncio.create_task(notifier.run(self._stop), name="embedq-notifier"))
                tasks.append(
                    asyncio.create_task(
                        run_rescuer(store, self.config.rescue_interval, self._stop), name="embedq-rescuer"
                    )
                )
                tasks.append(
                    asyncio.create_task(
                        run_indexer(
                            self.pool,
                            self.embedder.model,
                            self.config.hnsw_min_rows,
                            self.config.rescue_interval,
                            self._stop,
                        ),
                        name="embedq-indexer",
                    )
                )
                tasks.append(asyncio.create_task(self._announce_periodically(), name="embedq-announce"))
            else:
                await rescue_once(store)
            self.ready.set()
            logger.info(
                "listener started",
                extra={
                    "action": "start",
                    "worker": self.name,
                    "drain": drain,
                    "model": self.embedder.model,
                    "mode": self.mode,
                },
            )
            workers = [
                asyncio.create_task(self._work(drain), name=f"embedq-worker-{n}")
                for n in range(self.config.concurrency)
            ]
            await asyncio.gather(*workers)
            if drain and not self._stop.is_set():
                # a drained backlog (a backfill, a first load) is the moment to build it
                try:
                    await ensure_index(self.pool, self.embedder.model, self.config.hnsw_min_rows)
                except asyncpg.PostgresError as exc:
                    logger.error(
                        "HNSW index build failed; the next listener retries",
                        extra={"action": "index_build", "error": str(exc)},
                    )
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await store.forget_worker(self.name)
            except (*db.CONNECTION_ERRORS, asyncpg.PostgresError):
                pass
            if self.publisher is not None:
                await self.publisher.aclose()
            await self.pool.close()
        logger.info(
            "listener stopped",
            extra={
                "action": "stop",
                "worker": self.name,
                "done": self.totals.done,
                "dispatched": self.totals.dispatched,
                "failed": self.totals.failed,
                "dead": self.totals.dead,
            },
        )
        return self.totals

    async def _announce(self) -> None:
        mode = self.mode
        await self.store.announce_worker(self.name, mode, self.breaker.state.value)
        self._announced_mode = mode

    async def _announce_periodically(self) -> None:
        """Tell `status` we are alive (every 30 s) and keep the queue-depth metrics fresh."""
        beats = 0
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), 5)
            except TimeoutError:
                beats += 1
                try:
                    await metrics.refresh_queue(self.store)
                    if beats % 6 == 0:
                        await self._announce()
                except db.CONNECTION_ERRORS:
                    pass

    async def _claim(self, limit: int) -> list[Job]:
        return await self.store.claim(
            self.name,
            limit,
            lease=self.config.lease_seconds,
            max_attempts=self.config.max_attempts,
            model=self.embedder.model,
        )

    async def _claim_for_dispatch(self) -> list[Job]:
        return await self.store.claim(
            self.name,
            self.settings.dispatch_batch,
            lease=min(PUBLISH_LEASE_SECONDS, self.settings.dispatch_timeout),
            max_attempts=self.config.max_attempts,
            model=self.embedder.model,
            to=JobStatus.DISPATCHED,
        )

    async def _work(self, drain: bool) -> None:
        while not self._stop.is_set():
            # Cleared before claiming: a notification that lands after the claim wakes us again.
            self._wake.clear()
            try:
                if self.publisher is not None and self.breaker.allows_publish():
                    jobs = await self._claim_for_dispatch()
                    if jobs:
                        await self._dispatch(jobs)
                        continue
                else:
                    jobs = await self._claim(self.config.batch_size)
                    if jobs and self._worth_waiting_for_more(jobs):
                        await asyncio.sleep(self.config.batch_window)
                        jobs += await self._claim(self.config.batch_size - len(jobs))
                    if jobs:
                        logger.debug("jobs claimed", extra={"action": "claim", "job_ids": [j.id for j in jobs]})
                        self.totals.add(await self.local.publish(jobs))
                        continue
            except db.CONNECTION_ERRORS as exc:
                logger.warning("cannot claim; database unavailable", extra={"action": "claim", "error": str(exc)})
                await self._sleep(min(self.config.poll_interval, 1.0))
                continue
            if drain:
                return
            await self._sleep(self.config.poll_interval)

    async def _dispatch(self, jobs: list[Job]) -> None:
        try:
            await self.publisher.publish(jobs)
        except PublishError as exc:
            self.breaker.record_failure()
            logger.warning(
                "publish failed; processing the jobs here",
                extra={
                    "action": "publish",
                    "job_ids": [j.id for j in jobs],
                    "error": str(exc),
                    "breaker": self.breaker.state.value,
                },
            )
            claimed = await self.store.undispatch([j.id for j in jobs], self.config.lease_seconds)
            if claimed:
                self.totals.add(await self.local.publish(claimed))
        else:
            self.breaker.record_success()
            self.totals.dispatched += len(jobs)
        metrics.BREAKER_OPEN.set(1 if self.breaker.state is BreakerState.OPEN else 0)
        # against what was announced: a trial publish (half-open) that succeeds is a change too
        if self.mode != self._announced_mode:
            logger.warning(
                "delivery mode changed",
                extra={"action": "mode", "worker": self.name, "from": self._announced_mode, "to": self.mode},
            )
            await self._announce()

    def _worth_waiting_for_more(self, jobs: list[Job]) -> bool:
        return (
            self.config.batch_window > 0
            and len(jobs) < self.config.batch_size
            and min(j.priority for j in jobs) >= self.config.batch_window_min_priority
        )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
