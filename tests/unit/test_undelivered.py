"""What QStash could not deliver, as plain code on the in-memory job store: the listener reads the
DLQ and counts each message's failed delivery, a job that failed too often is processed here
instead of published again, a QStash that does not answer at start means local processing from
the start, and QStash's failures are classified once."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from qstash.errors import DailyMessageLimitExceededError, QStashError, RateLimitExceededError

from embedq.jobs import FailureCause, JobStatus
from embedq.listener.breaker import BreakerState
from embedq.listener.dead_letters import DeadLetterReader
from embedq.listener.sinks import LocalSink, QStashSink
from embedq.processing import Processor
from embedq.qstash.client import QStashCallError, problem_of
from embedq.settings import Settings
from embedq.store import Source
from embedq.testing import HashEmbedder, InMemoryJobStore, ManualClock

SOURCES = (Source("course", "app.courses", "id", ("title",), priority=2),)
BASE = "https://hooks.example.com"
SETTINGS = Settings.from_env(
    {"QSTASH_TOKEN": "test-token", "EMBEDQ_WEBHOOK_URL": f"{BASE}/v1/jobs", "EMBEDQ_MAX_ATTEMPTS": "3"}
)
WRONG_KEYS = json.dumps({"error": "invalid signature: signature does not match the current or the next signing key"})


class FakeQStash:
    """The QStash calls a sink and the DLQ reader make: publishes, DLQ reads and deletes."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.dlq: dict[str, dict[str, Any]] = {}
        self.failing: QStashCallError | None = None
        self.closed = False

    async def publish_batch(self, requests: list[dict[str, Any]]) -> list[str]:
        if self.failing:
            raise self.failing
        self.published.extend(requests)
        return [f"msg-{len(self.published) - len(requests) + n}" for n in range(len(requests))]

    async def dead_letters(self, url: str) -> list[dict[str, Any]]:
        if self.failing:
            raise self.failing
        return [entry for entry in self.dlq.values() if entry["url"] == url]

    async def delete_dead_letter(self, dlq_id: str) -> None:
        self.dlq.pop(dlq_id, None)

    async def aclose(self) -> None:
        self.closed = True

    def give_up(self, message_id: str, status: int, body: str) -> None:
        """QStash's retries of a message are exhausted: into the DLQ, and its failure callback,
        which cannot reach the webhook either, after it."""
        self.dlq[f"dlq-{len(self.dlq)}"] = {
            "dlqId": f"dlq-{len(self.dlq)}",
            "messageId": message_id,
            "url": f"{BASE}/v1/jobs",
            "responseStatus": status,
            "responseBody": body,
        }
        callback = {"sourceMessageId": message_id, "status": status, "body": base64.b64encode(body.encode()).decode()}
        self.dlq[f"dlq-{len(self.dlq)}"] = {
            "dlqId": f"dlq-{len(self.dlq)}",
            "messageId": f"callback-of-{message_id}",
            "url": f"{BASE}/v1/failures",
            "responseStatus": status,
            "responseBody": body,
            "body": json.dumps(callback),
        }


@pytest.fixture
def world():
    store = InMemoryJobStore(SOURCES, clock=ManualClock())
    qstash = FakeQStash()
    local = LocalSink(Processor(store, HashEmbedder(), SETTINGS), store, batch_size=10, lease_seconds=60)
    sink = QStashSink(qstash, store, SETTINGS, local)
    reader = DeadLetterReader(store, SETTINGS, "listener-1", client=qstash)  # type: ignore[arg-type]
    return store, qstash, sink, reader


async def dispatch(store: InMemoryJobStore, sink: QStashSink):
    jobs = await store.claim(
        "listener-1", 10, lease=60, max_attempts=SETTINGS.max_attempts, model=None, to=JobStatus.DISPATCHED
    )
    return await sink.take(jobs)


async def test_a_job_qstash_cannot_deliver_is_published_a_bounded_number_of_times_then_processed_here(world):
    store, qstash, sink, reader = world
    await store.announce_worker("listener-1", "qstash", "closed")
    source_id = store.write_row("course", {"title": "sourdough"})
    for delivery in range(SETTINGS.max_failed_deliveries):
        assert (await dispatch(store, sink)).dispatched == 1
        qstash.give_up(f"msg-{delivery}", 401, WRONG_KEYS)
        [found, callback] = await reader.read()
        assert (found.message_id, callback.message_id) == (f"msg-{delivery}", f"msg-{delivery}")
        assert not qstash.dlq  # each entry taken care of, and deleted
        [job] = store.jobs.values()
        assert (job.status, job.failed_deliveries, job.attempts) == (JobStatus.FAILED, delivery + 1, delivery + 1)
        assert "QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY" in job.last_error

    outcome = await dispatch(store, sink)

    assert outcome.dispatched == 0 and outcome.processed is not None and outcome.processed.done == [job.id]
    assert len(qstash.published) == SETTINGS.max_failed_deliveries
    assert list(store.vectors("course", source_id, "hash-test"))
    problem = store.workers["listener-1"].problem
    assert problem is not None and "answered 401" in problem


async def test_out_of_attempts_a_job_dies_of_its_failed_deliveries(world):
    store, qstash, sink, reader = world
    settings = Settings.from_env(
        {"QSTASH_TOKEN": "t", "EMBEDQ_WEBHOOK_URL": f"{BASE}/v1/jobs", "EMBEDQ_MAX_FAILED_DELIVERIES": "9"}
    )
    sink.settings = settings
    store.write_row("course", {"title": "unlucky"})
    for delivery in range(SETTINGS.max_attempts):
        await dispatch(store, sink)
        qstash.give_up(f"msg-{delivery}", 0, "ConnectError: [Errno 111] Connection refused")
        await reader.read()
    [job] = store.jobs.values()
    assert (job.status, job.cause, job.attempts) == (JobStatus.DEAD, FailureCause.DELIVERY, SETTINGS.max_attempts)
    assert "could not reach the webhook" in job.last_error


async def test_a_dlq_entry_read_twice_counts_once(world):
    store, qstash, sink, reader = world
    store.write_row("course", {"title": "once"})
    await dispatch(store, sink)
    qstash.give_up("msg-0", 404, "Not Found")
    entries = list(qstash.dlq.values())
    await reader.read()
    qstash.dlq = {e["dlqId"]: e for e in entries}  # another listener read them at the same time
    await reader.read()
    [job] = store.jobs.values()
    assert job.failed_deliveries == 1


@pytest.mark.parametrize(
    ("problem", "hint"),
    [
        (QStashCallError.UNREACHABLE, "unreachable"),
        (QStashCallError.TOKEN_REJECTED, "QSTASH_TOKEN"),
    ],
)
async def test_qstash_not_answering_at_start_means_processing_here_from_the_start(world, problem, hint, caplog):
    _, qstash, sink, _ = world
    qstash.failing = QStashCallError("no", problem)
    await sink.check()
    assert sink.breaker is BreakerState.OPEN and sink.mode == "fallback"
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert hint in warning.getMessage() and "processing jobs here" in warning.getMessage()


async def test_a_qstash_that_answers_at_start_changes_nothing(world):
    _, _, sink, _ = world
    await sink.check()
    assert sink.breaker is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (httpx.ConnectError("refused"), QStashCallError.UNREACHABLE),
        (httpx.ReadTimeout("slow"), QStashCallError.UNREACHABLE),
        (OSError("network down"), QStashCallError.UNREACHABLE),
        (QStashError("Request failed with status: 503, body: {}"), QStashCallError.UNREACHABLE),
        (QStashError("Request failed with status: 401, body: unauthorized"), QStashCallError.TOKEN_REJECTED),
        (QStashError("Request failed with status: 403, body: forbidden"), QStashCallError.TOKEN_REJECTED),
        (RateLimitExceededError("100", "0", "1"), QStashCallError.RATE_LIMITED),
        (DailyMessageLimitExceededError("1000", "0", "1"), QStashCallError.RATE_LIMITED),
        (QStashError("Request failed with status: 400, body: bad cron"), QStashCallError.FAILED),
    ],
)
def test_qstash_failures_are_classified_once(error, problem):
    assert problem_of(error) == problem
