"""The job store's contract: every scenario runs on JobStore (the real database) and on
InMemoryJobStore (the fake the unit tests use), so the fake keeps the SQL's promises.

Rows are written through the sample application's tables on PostgreSQL (its triggers queue the
jobs) and through the fake's write_row/delete_row, which play those triggers. Time moves by
sleeping on PostgreSQL and by advancing the fake's clock, by the same amount; the scenarios only
ever wait for something that is due, never for something not to happen yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from embedq import db
from embedq.jobs import FailureCause, Job, JobOp, JobStatus
from embedq.store import ChunkWrite, JobStore, Source, SourceWrite, Store
from embedq.testing import InMemoryJobStore, ManualClock

MODEL = "contract-model"
DIMENSIONS = 4
LONG_LEASE = 600.0
SHORT = 0.05  # a lease or backoff short enough to wait out in a test


class Backend:
    store: Store

    async def write(self, content_type: str, values: dict[str, Any], source_id: str | None = None) -> str:
        raise NotImplementedError

    async def delete(self, content_type: str, source_id: str) -> None:
        raise NotImplementedError

    async def advance(self, seconds: float) -> None:
        raise NotImplementedError


@dataclass
class PostgresBackend(Backend):
    store: JobStore
    conn: Any
    registered: dict[str, Source]

    async def write(self, content_type: str, values: dict[str, Any], source_id: str | None = None) -> str:
        source = self.registered[content_type]
        columns = list(values)
        if source_id is None:
            placeholders = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
            return await self.conn.fetchval(
                f"INSERT INTO {source.table_name} ({', '.join(columns)}) VALUES ({placeholders}) "
                f"RETURNING {source.key_column}::text",
                *values.values(),
            )
        assignments = ", ".join(f"{c} = ${n}" for n, c in enumerate(columns, start=2))
        await self.conn.execute(
            f"UPDATE {source.table_name} SET {assignments} WHERE {source.key_column} = $1::text::bigint",
            source_id,
            *values.values(),
        )
        return source_id

    async def delete(self, content_type: str, source_id: str) -> None:
        source = self.registered[content_type]
        await self.conn.execute(
            f"DELETE FROM {source.table_name} WHERE {source.key_column} = $1::text::bigint", source_id
        )

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class MemoryBackend(Backend):
    store: InMemoryJobStore
    clock: ManualClock

    async def write(self, content_type: str, values: dict[str, Any], source_id: str | None = None) -> str:
        return self.store.write_row(content_type, values, source_id)

    async def delete(self, content_type: str, source_id: str) -> None:
        self.store.delete_row(content_type, source_id)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


@pytest.fixture(params=["postgres", "memory"])
async def backend(request, conn, dsn) -> AsyncIterator[Backend]:
    pool = await db.create_pool(dsn, "embedq-tests", min_size=1, max_size=2)
    try:
        # the fake gets the very registrations of the sample application
        registered = await JobStore(pool).sources()
        if request.param == "postgres":
            yield PostgresBackend(JobStore(pool), conn, registered)
        else:
            clock = ManualClock()
            yield MemoryBackend(InMemoryJobStore(registered.values(), clock=clock), clock)
    finally:
        await pool.close()


async def claim(backend: Backend, limit: int = 100, lease: float = LONG_LEASE, **kwargs: Any) -> list[Job]:
    kwargs.setdefault("max_attempts", 5)
    kwargs.setdefault("model", None)
    return await backend.store.claim("contract", limit, lease=lease, **kwargs)


async def job(backend: Backend, job_id: int) -> Job:
    found = await backend.store.get(job_id)
    assert found is not None
    return found


def write_of(*texts: str, deleted: bool = False) -> SourceWrite:
    chunks = [
        ChunkWrite(i, np.full(DIMENSIONS, i + 1, dtype=np.float32), f"hash-{text}", text)
        for i, text in enumerate(texts)
    ]
    return SourceWrite(chunk_count=len(texts), chunks=chunks, deleted=deleted)


async def test_edits_coalesce_into_one_pending_job_with_the_latest_op(backend):
    course = await backend.write("course", {"title": "one"})
    await backend.write("course", {"title": "two"}, course)
    await backend.write("course", {"price_cents": 5}, course)  # not an embedded field: no job
    assert await backend.store.ingest() >= 1
    await backend.write("course", {"title": "three"}, course)
    await backend.delete("course", course)

    claimed = await claim(backend)

    assert [(j.key, j.op, j.priority, j.attempts) for j in claimed] == [(("course", course), JobOp.DELETE, 2, 1)]


async def test_claims_take_the_most_urgent_first_and_stop_at_the_limit(backend):
    post = await backend.write("post", {"title": "p"})  # priority 4
    comment = await backend.write("comment", {"post_id": int(post), "body": "c"})  # priority 5
    course = await backend.write("course", {"title": "c"})  # priority 2

    first = await claim(backend, limit=2)
    second = await claim(backend, limit=2)

    assert {j.key for j in first} == {("course", course), ("post", post)}
    assert [j.key for j in second] == [("comment", comment)]
    assert all(j.status is JobStatus.PROCESSING and j.locked_by == "contract" for j in first + second)
    assert await claim(backend) == []


async def test_a_row_with_a_job_in_flight_is_left_for_later(backend):
    course = await backend.write("course", {"title": "first"})
    [running] = await claim(backend)
    await backend.write("course", {"title": "second"}, course)  # queued while the first is processed

    assert await claim(backend) == []
    assert await backend.store.complete([running], MODEL, {running.key: write_of("first")}) == {running.id}
    [after] = await claim(backend)
    assert after.key == running.key and after.id != running.id


async def test_complete_writes_vectors_trims_surplus_chunks_and_a_delete_removes_them(backend):
    course = await backend.write("course", {"title": "long"})
    [first] = await claim(backend)
    await backend.store.complete([first], MODEL, {first.key: write_of("a", "b", "c")})
    assert await backend.store.stored_hashes(MODEL, [first.key]) == {first.key: {0: "hash-a", 1: "hash-b", 2: "hash-c"}}

    await backend.write("course", {"title": "short"}, course)
    [second] = await claim(backend)
    await backend.store.complete([second], MODEL, {second.key: SourceWrite(chunk_count=1)})
    assert await backend.store.stored_hashes(MODEL, [first.key]) == {first.key: {0: "hash-a"}}

    await backend.delete("course", course)
    [third] = await claim(backend)
    assert third.op is JobOp.DELETE
    await backend.store.complete([third], MODEL, {third.key: SourceWrite(deleted=True)})
    assert await backend.store.stored_hashes(MODEL, [first.key]) == {}
    assert (await job(backend, third.id)).status is JobStatus.DONE


async def test_a_lost_claim_can_neither_complete_nor_fail_nor_extend(backend):
    await backend.write("course", {"title": "slow"})
    [lost] = await claim(backend, lease=SHORT)
    await backend.advance(2 * SHORT)
    assert [(t.id, t.status) for t in await backend.store.rescue()] == [(lost.id, JobStatus.FAILED)]
    [again] = await claim(backend)
    assert (again.id, again.attempts) == (lost.id, 2)

    await backend.store.extend_leases([lost], LONG_LEASE * 10)
    assert await backend.store.fail([lost], "late", retryable=True, base_seconds=1, max_seconds=1) == []
    assert await backend.store.complete([lost], MODEL, {lost.key: write_of("stale")}) == set()

    assert await backend.store.stored_hashes(MODEL, [lost.key]) == {}
    current = await job(backend, lost.id)
    assert (current.status, current.attempts, current.lease_expires_at) == (
        JobStatus.PROCESSING,
        2,
        again.lease_expires_at,
    )
    assert await backend.store.complete([again], MODEL, {again.key: write_of("fresh")}) == {again.id}


async def test_only_the_confirmed_rows_of_a_batch_get_vectors(backend):
    kept = await backend.write("course", {"title": "kept"})
    cancelled = await backend.write("course", {"title": "cancelled"})
    claims = await claim(backend)
    by_source = {j.source_id: j for j in claims}
    assert await backend.store.cancel(by_source[cancelled].id) is not None

    confirmed = await backend.store.complete(claims, MODEL, {j.key: write_of(f"text of {j.source_id}") for j in claims})

    assert confirmed == {by_source[kept].id}
    stored = await backend.store.stored_hashes(MODEL, [j.key for j in claims])
    assert list(stored) == [("course", kept)]
    assert (await job(backend, by_source[cancelled].id)).last_error == "cancelled by operator"


async def test_failures_back_off_then_die_and_permanent_ones_die_at_once(backend):
    patient = await backend.write("course", {"title": "patient"})
    hasty = await backend.write("course", {"title": "hasty"})
    broken = await backend.write("course", {"title": "broken"})
    claims = {j.source_id: j for j in await claim(backend, max_attempts=2)}

    waits = await backend.store.fail(
        [claims[patient]], "503", retryable=True, base_seconds=LONG_LEASE, max_seconds=LONG_LEASE
    )
    soon = await backend.store.fail([claims[hasty]], "429", retryable=True, base_seconds=SHORT, max_seconds=SHORT)
    dies = await backend.store.fail([claims[broken]], "bad input", retryable=False, base_seconds=1, max_seconds=1)

    assert [t.status for t in waits + soon + dies] == [JobStatus.FAILED, JobStatus.FAILED, JobStatus.DEAD]
    dead = await job(backend, claims[broken].id)
    assert (dead.last_error, dead.finished_at is not None, dead.lease_expires_at) == ("bad input", True, None)
    waiting = await job(backend, claims[patient].id)
    assert waiting.run_after > waiting.updated_at and waiting.lease_expires_at is None

    await backend.advance(2 * SHORT)
    [retried] = await claim(backend, max_attempts=2)  # the patient one is still backing off
    assert (retried.source_id, retried.attempts) == (hasty, 2)
    [last] = await backend.store.fail([retried], "429 again", retryable=True, base_seconds=SHORT, max_seconds=SHORT)
    assert last.status is JobStatus.DEAD  # out of attempts


async def test_rescue_returns_expired_leases_and_ends_jobs_out_of_attempts(backend):
    await backend.write("course", {"title": "crashed"})
    await backend.write("course", {"title": "alive"})
    crashed, alive = await claim(backend, limit=1, lease=SHORT, max_attempts=1), await claim(backend, limit=1)
    await backend.advance(2 * SHORT)

    transitions = await backend.store.rescue()

    assert [(t.id, t.status) for t in transitions] == [(crashed[0].id, JobStatus.DEAD)]
    rescued = await job(backend, crashed[0].id)
    assert rescued.last_error == "lease expired while processing by contract"
    assert (await job(backend, alive[0].id)).status is JobStatus.PROCESSING
    assert await backend.store.rescue() == []


async def test_requeue_revives_ended_jobs_or_merges_them_into_a_pending_one(backend):
    alone = await backend.write("course", {"title": "alone"})
    merged = await backend.write("post", {"title": "merged"})
    claims = {j.key: j for j in await claim(backend)}
    await backend.store.fail(list(claims.values()), "nope", retryable=False, base_seconds=1, max_seconds=1)
    await backend.write("post", {"title": "edited since"}, merged)
    await backend.store.ingest()
    ids = [claims[("course", alone)].id, claims[("post", merged)].id]

    requeued = {r.id: r for r in await backend.store.requeue(ids)}

    revived = await job(backend, ids[0])
    assert (requeued[revived.id].status, revived.status, revived.attempts) == (JobStatus.PENDING, JobStatus.PENDING, 0)
    superseded = requeued[ids[1]]
    assert superseded.status is JobStatus.DONE and superseded.merged_into is not None
    pending = await job(backend, superseded.merged_into)
    assert (pending.status, pending.key) == (JobStatus.PENDING, ("post", merged))
    assert await backend.store.requeue([pending.id]) == []  # a pending job is not requeued


async def test_dispatch_then_accept_or_undispatch_or_undelivered(backend):
    for title in ("delivered", "fallback", "given up"):
        await backend.write("course", {"title": title})
    dispatched = await claim(backend, lease=SHORT, to=JobStatus.DISPATCHED)
    assert [j.attempts for j in dispatched] == [0, 0, 0]  # attempts count where the work happens
    delivered, fallback, given_up = sorted(dispatched, key=lambda j: j.id)
    await backend.store.set_messages([([delivered.id], "msg-1"), ([given_up.id], "msg-2")], LONG_LEASE)
    await backend.advance(2 * SHORT)
    # set_messages gave the published ones the delivery lease; the other's publish lease ran out
    assert [(t.id, t.status) for t in await backend.store.rescue()] == [(fallback.id, JobStatus.FAILED)]

    [accepted] = await backend.store.accept([delivered.id], "webhook", LONG_LEASE)
    assert (accepted.status, accepted.attempts, accepted.locked_by) == (JobStatus.PROCESSING, 1, "webhook")
    assert await backend.store.accept([delivered.id], "webhook", LONG_LEASE) == []  # a duplicate delivery

    transitions = await backend.store.undelivered("msg-2", "QStash gave up")
    assert [(t.id, t.status) for t in transitions] == [(given_up.id, JobStatus.FAILED)]
    back = await job(backend, given_up.id)
    assert (back.last_error, back.attempts, back.failed_deliveries) == ("QStash message msg-2: QStash gave up", 1, 1)
    assert back.message_id is None and back.run_after <= back.updated_at  # runnable at once
    assert await backend.store.undelivered("msg-2", "reported twice") == []  # the callback and the DLQ
    assert await backend.store.undelivered("msg-1", "not waiting for it") == []  # the webhook has it
    rescued = await job(backend, fallback.id)
    assert (rescued.status, rescued.attempts, rescued.failed_deliveries) == (JobStatus.FAILED, 1, 1)
    assert rescued.last_error.startswith("publishing by contract did not finish")


async def test_a_message_never_recorded_is_found_by_the_jobs_it_carried(backend):
    await backend.write("course", {"title": "published, its message id lost with the database"})
    [dispatched] = await claim(backend, to=JobStatus.DISPATCHED)

    assert await backend.store.undelivered("msg-lost", "QStash gave up") == []
    [transition] = await backend.store.undelivered("msg-lost", "QStash gave up", [dispatched.id])

    assert transition.status is JobStatus.FAILED
    assert (await job(backend, dispatched.id)).failed_deliveries == 1
    assert await backend.store.undelivered("msg-lost", "reported twice", [dispatched.id]) == []


async def test_every_failed_delivery_is_an_attempt_until_the_job_dies_of_it(backend):
    await backend.write("course", {"title": "never delivered"})
    for attempt in (1, 2):
        [dispatched] = await claim(backend, lease=LONG_LEASE, to=JobStatus.DISPATCHED, max_attempts=2)
        await backend.store.set_messages([([dispatched.id], f"msg-{attempt}")], SHORT)
        await backend.advance(2 * SHORT)
        if attempt == 1:  # no word from QStash within the dispatch timeout
            [rescued] = await backend.store.rescue()
            assert rescued.status is JobStatus.FAILED
        else:  # QStash gave up, and said so
            [ended] = await backend.store.undelivered("msg-2", "the webhook at x answered 401")
            assert ended.status is JobStatus.DEAD
    dead = await job(backend, dispatched.id)
    assert (dead.attempts, dead.failed_deliveries, dead.cause) == (2, 2, FailureCause.DELIVERY)
    assert dead.finished_at is not None and dead.lease_expires_at is None

    [requeued] = await backend.store.requeue([dead.id])
    revived = await job(backend, requeued.id)
    assert (revived.status, revived.attempts, revived.failed_deliveries, revived.cause) == (
        JobStatus.PENDING,
        0,
        0,
        None,
    )


async def test_dead_jobs_record_their_cause(backend):
    titles = ("outage", "bad text", "dimensions", "cancelled", "crashed")
    for title in titles:
        await backend.write("course", {"title": title})
    claimed = sorted(await claim(backend, max_attempts=1, lease=SHORT), key=lambda j: j.id)
    claims = dict(zip(titles, claimed, strict=True))
    await backend.store.fail([claims["outage"]], "503", retryable=True, base_seconds=1, max_seconds=1)
    await backend.store.fail([claims["bad text"]], "no", retryable=False, base_seconds=1, max_seconds=1)
    await backend.store.fail(
        [claims["dimensions"]], "3 != 4", retryable=False, base_seconds=1, max_seconds=1, cause=FailureCause.DIMENSIONS
    )
    await backend.store.cancel(claims["cancelled"].id)
    await backend.store.extend_leases([claims["crashed"]], SHORT)
    await backend.advance(2 * SHORT)
    await backend.store.rescue()

    causes = {title: (await job(backend, j.id)).cause for title, j in claims.items()}

    assert causes == {
        "outage": FailureCause.OUTAGE,  # a retryable failure, out of attempts
        "bad text": FailureCause.REJECTED,
        "dimensions": FailureCause.DIMENSIONS,
        "cancelled": FailureCause.CANCELLED,
        "crashed": FailureCause.CRASH,
    }
    assert {(await job(backend, j.id)).status for j in claims.values()} == {JobStatus.DEAD}


async def test_the_jobs_of_a_worker_unseen_for_too_long_are_returned_before_their_lease_ends(backend):
    for title in ("unannounced worker's", "dead listener's", "dead webhook's", "live webhook's"):
        await backend.write("course", {"title": title})
    await backend.store.announce_worker("host:1:dead", "local", "closed")
    await backend.store.announce_worker("webhook:host:2:dead", "qstash", "closed", role="webhook")
    [unannounced] = await claim(backend, limit=1)
    [by_listener] = await backend.store.claim("host:1:dead", 1, lease=LONG_LEASE, max_attempts=5, model=None)
    [dispatched] = await claim(backend, limit=1, to=JobStatus.DISPATCHED)
    [at_dead_webhook] = await backend.store.accept([dispatched.id], "webhook:host:2:dead:msg_9", LONG_LEASE)
    await backend.advance(4 * SHORT)
    await backend.store.announce_worker("webhook:host:3:alive", "qstash", "closed", role="webhook")
    [at_live_webhook] = await backend.store.accept(
        [(await claim(backend, limit=1, to=JobStatus.DISPATCHED))[0].id], "webhook:host:3:alive:msg_8", LONG_LEASE
    )

    assert await backend.store.rescue() == []  # no lease expired
    returned = await backend.store.rescue(worker_timeout=3 * SHORT)

    assert sorted((t.id, t.status) for t in returned) == sorted(
        [(by_listener.id, JobStatus.FAILED), (at_dead_webhook.id, JobStatus.FAILED)]
    )
    assert (await job(backend, at_live_webhook.id)).status is JobStatus.PROCESSING
    assert (await job(backend, unannounced.id)).status is JobStatus.PROCESSING  # "contract" never announced
    rescued = await job(backend, by_listener.id)
    assert rescued.last_error.startswith("worker host:1:dead stopped heartbeating")
    assert rescued.attempts == 1  # the claim counted it already


async def test_a_failed_publish_is_undone_and_the_jobs_processed_here(backend):
    await backend.write("course", {"title": "a"})
    await backend.write("course", {"title": "b"})
    dispatched = await claim(backend, to=JobStatus.DISPATCHED)

    taken = await backend.store.undispatch([j.id for j in dispatched], LONG_LEASE)

    assert sorted((j.status, j.attempts) for j in taken) == [(JobStatus.PROCESSING, 1)] * 2
    assert await backend.store.undispatch([j.id for j in dispatched], LONG_LEASE) == []
    done = await backend.store.complete(taken, MODEL, {j.key: write_of(j.source_id) for j in taken})
    assert done == {j.id for j in dispatched}


async def test_a_webhook_failure_hands_the_message_back_to_qstash(backend):
    await backend.write("course", {"title": "redelivered"})
    [dispatched] = await claim(backend, to=JobStatus.DISPATCHED)
    await backend.store.set_messages([([dispatched.id], "msg-1")], LONG_LEASE)
    [accepted] = await backend.store.accept([dispatched.id], "webhook", LONG_LEASE)

    [transition] = await backend.store.fail(
        [accepted], "provider down", retryable=True, base_seconds=1, max_seconds=1, redelivery_seconds=LONG_LEASE
    )

    assert transition.status is JobStatus.DISPATCHED
    current = await job(backend, accepted.id)
    assert (current.message_id, current.lease_expires_at is not None) == ("msg-1", True)
    [redelivered] = await backend.store.accept([accepted.id], "webhook", LONG_LEASE)
    assert redelivered.attempts == 2


async def test_jobs_of_another_model_are_left_to_its_listeners(backend):
    model = await backend.store.ensure_model(MODEL, "test", DIMENSIONS)
    other = await backend.store.ensure_model("other-model", "test", DIMENSIONS)
    assert (model.active, other.active) == (True, False)
    await backend.write("course", {"title": "for the active model"})

    assert await claim(backend, model="other-model") == []
    [mine] = await claim(backend, model=MODEL)
    assert mine.model is None


async def test_workers_and_queue_counts(backend):
    await backend.write("course", {"title": "a"})
    await backend.write("post", {"title": "b"})
    await backend.write("post", {"title": "c"})
    await backend.store.ingest()
    [taken] = await claim(backend, limit=1)

    counts = {(c.status, c.priority): c.jobs for c in await backend.store.queue_counts()}

    assert counts == {(JobStatus.PROCESSING, 2): 1, (JobStatus.PENDING, 4): 2}
    assert (await backend.store.oldest_pending_age() or 0) >= 0
    assert [j.id for j in await backend.store.recent(JobStatus.PROCESSING, 10)] == [taken.id]
    await backend.store.announce_worker("w1", "qstash", "closed")
    await backend.store.announce_worker("webhook:w2", "qstash", "closed", role="webhook")
    await backend.store.note_problem("w1", "the webhook at x answered 401")
    await backend.store.forget_worker("w1")


async def test_claims_within_a_priority_range_and_jobs_in_flight_by_priority(backend):
    post = await backend.write("post", {"title": "p"})  # priority 4
    comment = await backend.write("comment", {"post_id": int(post), "body": "c"})  # priority 5
    course = await backend.write("course", {"title": "c"})  # priority 2

    dispatched = await claim(backend, priorities=(5, None), to=JobStatus.DISPATCHED)
    processing = await claim(backend, priorities=(None, 2))

    assert [(j.key, j.status) for j in dispatched] == [(("comment", comment), JobStatus.DISPATCHED)]
    assert [(j.key, j.status) for j in processing] == [(("course", course), JobStatus.PROCESSING)]
    assert await claim(backend, priorities=(3, 3)) == []
    assert await backend.store.in_flight_by_priority() == {2: 1, 5: 1}
    assert [await backend.store.has_runnable(r) for r in [(None, 3), (3, 4), (4, None), (5, None)]] == [
        False,
        True,
        True,
        False,
    ]
    [in_range] = await claim(backend, priorities=(3, 4))
    assert in_range.key == ("post", post)
    await backend.store.complete(processing, MODEL, {})
    assert await backend.store.in_flight_by_priority() == {4: 1, 5: 1}
