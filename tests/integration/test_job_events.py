"""Every job state change announces itself on channel embedq_events, in the transaction that
makes it, with an id from the database and, for failed and dead jobs, the reason."""

from __future__ import annotations

import asyncio
import json

import pytest

from embedq import db


class Announcements:
    def __init__(self, watcher) -> None:
        self.watcher = watcher
        self.payloads: list[str] = []

    async def take(self) -> list[dict]:
        """What was announced since the last take."""
        await self.watcher.execute("SELECT 1")  # a round trip: what committed before it has arrived
        await asyncio.sleep(0.05)  # and its listener callbacks have run
        taken = [json.loads(p) for p in self.payloads]
        self.payloads.clear()
        return taken


@pytest.fixture
async def announced(dsn):
    watcher = await db.connect(dsn, "embedq-tests-job-events")
    announcements = Announcements(watcher)
    await watcher.add_listener("embedq_events", lambda *args: announcements.payloads.append(args[3]))
    yield announcements
    await watcher.close()


def shape(payloads: list[dict]) -> list[tuple[str, list[int], str | None]]:
    return [(p["event"], [job[0] for job in p["jobs"]], p.get("error")) for p in payloads]


async def test_every_transition_announces_itself(conn, announced):
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('a'), ('b'), ('c')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    steps = [shape(await announced.take())]
    first = await conn.fetchval("SELECT id FROM embedq.jobs_claim('w', 1, '1 minute', NULL, 'processing')")
    steps.append(shape(await announced.take()))
    second = await conn.fetchval("SELECT id FROM embedq.jobs_claim('w', 1, '1 minute', NULL, 'dispatched')")
    assert shape(await announced.take()) == []  # announced once its message is recorded
    await conn.execute("SELECT embedq.jobs_set_message(ARRAY[$1]::bigint[], 'msg_1', '1 hour')", second)
    steps.append(shape(await announced.take()))
    await conn.execute("SELECT * FROM embedq.jobs_accept(ARRAY[$1]::bigint[], 'webhook', '1 minute')", second)
    steps.append(shape(await announced.take()))
    third = await conn.fetchval("SELECT id FROM embedq.jobs_claim('w', 1, '1 minute', NULL, 'dispatched')")
    await conn.execute("SELECT * FROM embedq.jobs_undispatch(ARRAY[$1]::bigint[], '1 minute')", third)
    steps.append(shape(await announced.take()))
    await conn.execute("SELECT * FROM embedq.jobs_fail(ARRAY[$1]::bigint[], ARRAY[1], 'provider said no', true)", first)
    steps.append(shape(await announced.take()))
    await conn.execute("SELECT * FROM embedq.jobs_fail(ARRAY[$1]::bigint[], ARRAY[1], 'bad text', false)", second)
    steps.append(shape(await announced.take()))
    await conn.execute("UPDATE embedq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", third)
    await conn.execute("SELECT * FROM embedq.jobs_rescue()")
    steps.append(shape(await announced.take()))
    await conn.execute(
        "UPDATE embedq.jobs SET status = 'dispatched', message_id = 'msg_2', lease_expires_at = now() + "
        "interval '1 hour' WHERE id = $1",
        first,
    )
    await conn.execute("SELECT * FROM embedq.jobs_undelivered('msg_2', 'QStash gave up')")
    steps.append(shape(await announced.take()))
    await conn.execute("SELECT * FROM embedq.jobs_cancel($1)", third)
    steps.append(shape(await announced.take()))

    assert steps == [
        [("queued", [first, second, third], None)],
        [("processing", [first], None)],
        [("dispatched", [second], None)],
        [("processing", [second], None)],
        [("processing", [third], None)],
        [("failed", [first], "provider said no")],
        [("dead", [second], "bad text")],
        [("failed", [third], "lease expired while processing by w")],
        [("failed", [first], "QStash message msg_2: QStash gave up")],
        [("dead", [third], "cancelled by operator")],
    ]


async def test_event_ids_increase_across_transactions(conn, announced):
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 't' || g FROM generate_series(1, 5) g")
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("SELECT id FROM embedq.jobs_claim('w', 5, '1 minute', NULL, 'processing')")
    ids = [job[3] for payload in await announced.take() for job in payload["jobs"]]
    assert len(ids) == 10 and ids == sorted(set(ids))


async def test_payloads_stay_under_the_notify_limit(conn, announced):
    """Long keys and long errors full of characters JSON escapes: every payload fits in 8,000
    bytes, every job is announced once, an error is cut to 300 characters and an absurd key is
    sent as null."""
    long_key = "k" * 1_900
    error = "\x01" * 1_000  # \u0001 in JSON: six bytes each
    jobs = [[n, "course", long_key + str(n), "failed", error] for n in range(1, 201)]
    jobs.append([201, "course", "é" * 5_000, "failed", error])
    sent = await conn.fetchval("SELECT embedq.jobs_announce($1::jsonb)", jobs)
    payloads = await announced.take()
    assert len(payloads) == sent > 1
    for payload in payloads:
        assert len(json.dumps(payload, ensure_ascii=False).encode()) < 8_000
        assert payload["error"] == "\x01" * 300
    announced_jobs = {job[0]: job[2] for payload in payloads for job in payload["jobs"]}
    assert sorted(announced_jobs) == list(range(1, 202))
    assert announced_jobs[7] == long_key + "7" and announced_jobs[201] is None
