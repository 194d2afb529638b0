"""The claim-and-process loop, and the listener process around it.

Workers wake on a notification or on the poll timer (the safety net), drain the backlog at
start, and claim in priority order with SKIP LOCKED, so any number of listeners can run side
by side. What they claim, and what happens to it, is their sink's business (listener/sinks.py):
processed here, or published to QStash. Claims carry a lease; a crashed listener's jobs come
back through the rescuer. `stop()` (SIGTERM) lets each worker finish the batch in hand, then
returns.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg

from embedq import db
from embedq.jobs import Job
from embedq.listener.dead_letters import DeadLetterReader
from embedq.listener.heartbeat import Heartbeat
from embedq.listener.indexer import Indexer, build_index_when_due
from embedq.listener.rescuer import Rescuer
from embedq.listener.sinks import ClaimPlan, LocalSink, QStashSink, Sink, SinkOutcome
from embedq.metrics import QueueRefresh
from embedq.notify import Notifier
from embedq.periodic import sleep_until
from embedq.processing import Processor
from embedq.providers.base import Embedder
from embedq.settings import Settings
from embedq.store import JobStore, PriorityRange, Store
from embedq.workers import heartbeat_interval, worker_name

logger = logging.getLogger(__name__)
#: how long a worker waits before claiming again after the database was unreachable
UNREACHABLE_RETRY_SECONDS = 1.0


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
    """What a listener did since it started (`embedq listen` prints them): counts only."""

    batches: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    lost: int = 0
    embedded_chunks: int = 0
    dispatched: int = 0

    def add(self, outcome: SinkOutcome) -> None:
        self.dispatched += outcome.dispatched
        processed = outcome.processed
        if processed is None:
            return
        self.batches += 1
        self.done += len(processed.done)
        self.failed += len(processed.failed)
        self.dead += len(processed.dead)
        self.lost += len(processed.lost)
        self.embedded_chunks += processed.embedded_chunks


class Claimer:
    """The workers' loop: ask the sink what to claim, claim it, hand it over; when nothing is
    runnable, wait for a wake-up (a notification, or the poll timer), or end when draining.
    Any number of workers run `work()` side by side on one Claimer."""

    def __init__(
        self,
        store: Store,
        sink: Sink,
        config: ListenerConfig,
        *,
        worker: str,
        model: str | None,
        totals: Totals | None = None,
        heartbeat: Heartbeat | None = None,
        wake: asyncio.Event | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.config = config
        self.worker = worker
        self.model = model
        self.totals = totals or Totals()
        self.heartbeat = heartbeat
        self.wake = wake or asyncio.Event()
        self.stopping = stopping or asyncio.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    async def work(self, drain: bool = False) -> None:
        while not self.stopping.is_set():
            # Cleared before claiming: a notification that lands after the claim wakes us again.
            self.wake.clear()
            try:
                plan = await self.sink.plan()
                jobs = await self.claim(plan)
                if jobs:
                    if len(jobs) >= plan.limit:
                        # a full claim: more is waiting, and the other workers may be asleep (their
                        # claims found nothing while this one was ingesting the inbox)
                        self.wake.set()
                    self.totals.add(await self.sink.take(jobs))
                    if self.heartbeat is not None:
                        await self.heartbeat.announce_if_changed()
                    continue
            except db.CONNECTION_ERRORS as exc:
                logger.warning("cannot claim; database unavailable", extra={"action": "claim", "error": str(exc)})
                await sleep_until(self.wake, min(self.config.poll_interval, UNREACHABLE_RETRY_SECONDS))
                continue
            if plan.recheck is not None:
                # a tier at its cap: jobs it holds back become claimable as its jobs end, which
                # no notification announces (a draining listener waits for them too)
                await sleep_until(self.wake, min(plan.recheck, self.config.poll_interval))
                continue
            if drain:
                return
            await sleep_until(self.wake, self.config.poll_interval)

    async def claim(self, plan: ClaimPlan | None = None) -> list[Job]:
        """What the sink asks for (each of its tiers, most urgent first); a short claim of
        low-priority jobs waits the batch window once for more, so they share one provider call."""
        plan = plan or await self.sink.plan()
        jobs: list[Job] = []
        for part in plan.parts():
            if part.limit > 0:
                jobs += await self._claim(plan, part.limit, part.priorities)
        if jobs and self._worth_waiting_for_more(plan, jobs):
            await asyncio.sleep(plan.batch_window)
            jobs += await self._claim(plan, plan.limit - len(jobs))
        if jobs:
            logger.debug(
                "jobs claimed", extra={"action": "claim", "job_ids": [j.id for j in jobs], "to": plan.to.value}
            )
        return jobs

    async def _claim(self, plan: ClaimPlan, limit: int, priorities: PriorityRange | None = None) -> list[Job]:
        return await self.store.claim(
            self.worker,
            limit,
            lease=plan.lease,
            max_attempts=self.config.max_attempts,
            model=self.model,
            to=plan.to,
            priorities=priorities,
        )

    def _worth_waiting_for_more(self, plan: ClaimPlan, jobs: list[Job]) -> bool:
        return (
            plan.batch_window > 0
            and not plan.tiers
            and len(jobs) < plan.limit
            and min(j.priority for j in jobs) >= self.config.batch_window_min_priority
        )


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
        self.sink: Sink | None = None
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()

    @property
    def mode(self) -> str:
        if self.sink is None:
            return "qstash" if self.settings.qstash_enabled else "local"
        return self.sink.mode

    def stop(self) -> None:
        """Finish the batches in hand, then return from run()."""
        self._stop.set()
        self._wake.set()

    def _sink(self, store: Store) -> Sink:
        local = LocalSink(
            Processor(store, self.embedder, self.settings),
            store,
            batch_size=self.config.batch_size,
            lease_seconds=self.config.lease_seconds,
            batch_window=self.config.batch_window,
        )
        return QStashSink.from_settings(self.settings, store, local) if self.settings.qstash_enabled else local

    async def run(self, *, drain: bool = False) -> Totals:
        app = self.settings.application_name
        pool = await db.create_pool(
            self.dsn, f"{app}-listener", min_size=1, max_size=self.config.concurrency + 3, worker=True
        )
        store = JobStore(pool)
        tasks: list[asyncio.Task] = []
        try:
            async with pool.acquire() as conn:
                await db.ensure_migrated(conn)
            self.sink = sink = self._sink(store)
            model = await store.ensure_model(self.embedder.model, self.embedder.provider, self.embedder.dimensions)
            if not model.active and not model.maintained:
                logger.warning(
                    "this listener's model is neither the active one nor being filled: it only takes jobs "
                    f"queued for it (embedq backfill --model {model.name}); "
                    f"embedq models activate {model.name} makes it the active one",
                    extra={"action": "start", "model": model.name},
                )
            if isinstance(sink, QStashSink):
                await sink.check()
            heartbeat = Heartbeat(store, self.name, sink, heartbeat_interval(self.settings.worker_timeout))
            await heartbeat.announce()
            rescuer = Rescuer(store, self.config.rescue_interval, worker_timeout=self.settings.worker_timeout)
            if drain:
                await rescuer.rescue()
            else:
                notifier = Notifier(self.dsn, f"{app}-notify", lambda _payload: self._wake.set())
                tasks.append(asyncio.create_task(notifier.run(self._stop), name="embedq-notifier"))
                services = [
                    rescuer,
                    Indexer(store, self.embedder.model, self.config.hnsw_min_rows, self.config.rescue_interval),
                    heartbeat,
                    QueueRefresh(store),
                ]
                if self.settings.qstash_enabled:
                    services.append(DeadLetterReader(store, self.settings, self.name))
                tasks.extend(service.start(self._stop) for service in services)
            claimer = Claimer(
                store,
                sink,
                self.config,
                worker=self.name,
                model=self.embedder.model,
                totals=self.totals,
                heartbeat=heartbeat,
                wake=self._wake,
                stopping=self._stop,
            )
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
                asyncio.create_task(claimer.work(drain), name=f"embedq-worker-{n}")
                for n in range(self.config.concurrency)
            ]
            await asyncio.gather(*workers)
            if drain and not self._stop.is_set():
                # a drained backlog (a backfill, a first load) is the moment to build it
                try:
                    await build_index_when_due(store, self.embedder.model, self.config.hnsw_min_rows)
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
            if self.sink is not None:
                await self.sink.aclose()
            await pool.close()
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
