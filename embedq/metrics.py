"""Prometheus metrics, one registry per process: /metrics on the webhook, and on the listener's
own port (EMBEDQ_METRICS_PORT). Queue depth is read from the database when it is refreshed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from embedq.jobs import JobStatus
from embedq.periodic import PeriodicService
from embedq.store import Store

REGISTRY = CollectorRegistry()

JOBS_FINISHED = Counter(
    "embedq_jobs_finished_total", "Jobs this process ended, by outcome", ["outcome"], registry=REGISTRY
)
PROCESSING_SECONDS = Histogram(
    "embedq_processing_seconds",
    "One batch: load, embed, write",
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
PROVIDER_SECONDS = Histogram(
    "embedq_provider_seconds",
    "One embedding provider call",
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
WRITE_TO_VECTOR_SECONDS = Histogram(
    "embedq_write_to_vector_seconds",
    "From a row's write (its job's created_at) to its vectors committed, by the job's priority",
    ["priority"],
    registry=REGISTRY,
    # the design targets: priority 1-2 within 10 s, 3-4 within a minute, 5 and lower within 5 minutes
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
PUBLISH_CALLS = Counter("embedq_publish_calls_total", "Calls to QStash, by result", ["result"], registry=REGISTRY)
BREAKER_OPEN = Gauge(
    "embedq_qstash_breaker_open", "1 while the QStash breaker is open (jobs processed locally)", registry=REGISTRY
)
LISTEN_RECONNECTS = Counter(
    "embedq_listen_reconnects_total",
    "LISTEN connections lost or refused, each followed by a reconnect with backoff",
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "embedq_jobs", "Jobs in the outbox by status and priority", ["status", "priority"], registry=REGISTRY
)
OLDEST_PENDING = Gauge("embedq_oldest_pending_seconds", "Age of the oldest pending job", registry=REGISTRY)


async def refresh_queue(store: Store) -> None:
    seen: set[tuple[str, str]] = set()
    for count in await store.queue_counts():
        labels = (count.status.value, str(count.priority))
        QUEUE_DEPTH.labels(*labels).set(count.jobs)
        seen.add(labels)
    for emptied in set(QUEUE_DEPTH._metrics) - seen:  # statuses that emptied go back to zero
        QUEUE_DEPTH.labels(*emptied).set(0)
    OLDEST_PENDING.set(await store.oldest_pending_age() or 0)


class QueueRefresh(PeriodicService):
    """Keeps the queue-depth gauges fresh in a process that serves them (the listener's port)."""

    action = "metrics"
    default_interval = 5.0

    def __init__(self, store: Store, interval: float | None = None) -> None:
        super().__init__(interval)
        self.store = store

    async def run_once(self) -> bool:
        await refresh_queue(self.store)
        return False


def render() -> bytes:
    return generate_latest(REGISTRY)


__all__ = ["REGISTRY", "JobStatus", "QueueRefresh", "refresh_queue", "render"]
