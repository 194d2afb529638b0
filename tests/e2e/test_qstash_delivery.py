"""QStash delivery end to end: listener -> QStash-compatible server -> signed webhook -> vectors,
all over real HTTP on 127.0.0.1, on the real database."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from embedq.errors import RetryableError
from embedq.listener import Listener, ListenerConfig
from embedq.settings import Settings
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import free_port, serve_app
from tests.qstash_server import QStashServer, claims, encode, sign


@dataclass
class Delivery:
    qstash: QStashServer
    webhook_url: str  # base URL
    settings: Settings
    embedder: HashEmbedder
    http: httpx.AsyncClient

    def listener(self, **config) -> Listener:
        defaults = dict(batch_size=50, batch_window=0.0, poll_interval=0.2, rescue_interval=0.2)
        return Listener(
            self.settings.database_url, self.embedder, self.settings, ListenerConfig(**{**defaults, **config})
        )

    async def post_jobs(self, body: bytes, signature: str | None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers["upstash-signature"] = signature
        return await self.http.post(f"{self.webhook_url}/v1/jobs", content=body, headers=headers)


@contextlib.asynccontextmanager
async def delivery_setup(settings: Settings, **overrides):
    async with QStashServer(time_scale=0.001) as qstash:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**qstash.env, "EMBEDQ_WEBHOOK_URL": f"{base}/v1/jobs"}
        delivery_settings = dataclasses.replace(
            Settings.from_env(env, database_url=settings.database_url),
            breaker_cooldown=0.5,
            qstash_retries=2,
            **overrides,
        )
        embedder = HashEmbedder()
        app = create_app(delivery_settings, embedder=embedder)
        async with serve_app(app, port=port, lifespan="on"), httpx.AsyncClient(timeout=30) as http:
            yield Delivery(qstash, base, delivery_settings, embedder, http)


@pytest.fixture
async def delivery(settings):
    async with delivery_setup(settings) as prepared:
        yield prepared


async def wait_for(predicate, timeout: float = 30.0, describe=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout} s" + (f": {await describe()}" if describe else ""))


async def job_statuses(conn) -> dict[str, int]:
    await conn.execute("SELECT embedq.jobs_ingest()")
    return {r[0]: r[1] for r in await conn.fetch("SELECT status::text, count(*) FROM embedq.jobs GROUP BY 1")}


async def dispatch_all(conn) -> list[int]:
    """Claim every pending job for dispatch, as the listener does, without publishing."""
    rows = await conn.fetch("SELECT * FROM embedq.jobs_claim('test', 1000, '1 hour', NULL, 'dispatched')")
    return [r["id"] for r in rows]


def jobs_body(ids: list[int]) -> bytes:
    return json.dumps({"jobs": [{"id": i} for i in ids]}).encode()


async def test_rows_travel_through_qstash_to_vectors(conn, delivery):
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'course ' || g FROM generate_series(1, 120) g")
    totals = await delivery.listener().run(drain=True)
    assert totals.dispatched == 120 and totals.done == 0  # the listener only published
    await delivery.qstash.wait_idle(timeout=30)

    async def describe():
        return {
            "jobs": await job_statuses(conn),
            "qstash": delivery.qstash.counters,
            "attempts": delivery.qstash.attempts,
        }

    await wait_for(lambda: _all_done(conn, 120), describe=describe)
    assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == 120
    # one /v2/batch call per claim; 120 jobs of one priority -> 2 messages of at most 100
    assert delivery.qstash.counters.batch_calls == 1
    assert delivery.qstash.counters.messages == 2
    assert await conn.fetchval("SELECT count(DISTINCT message_id) FROM embedq.jobs") == 2


async def _all_done(conn, n: int) -> bool:
    return (await job_statuses(conn)).get("done", 0) == n


@pytest.mark.parametrize(
    ("case", "accepted"),
    [
        ("current key", True),
        ("next key only", True),
        ("forged key", False),
        ("expired", False),
        ("wrong sub", False),
        ("wrong body", False),
        ("missing", False),
        ("alg none", False),
    ],
)
async def test_only_valid_signatures_get_in(conn, delivery, case, accepted):
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('signed')")
    ids = await dispatch_all(conn)
    body = jobs_body(ids)
    url = f"{delivery.webhook_url}/v1/jobs"
    current, following = delivery.settings.qstash_current_signing_key, delivery.settings.qstash_next_signing_key
    signature = {
        "current key": lambda: sign(current, url, body),
        "next key only": lambda: sign(following, url, body),
        "forged key": lambda: sign("sig_forged_key_000000000000", url, body),
        "expired": lambda: sign(current, url, body, now=time.time() - 3600),
        "wrong sub": lambda: sign(current, "http://attacker.example/v1/jobs", body),
        "wrong body": lambda: sign(current, url, body + b" "),
        "missing": lambda: None,
        "alg none": lambda: encode(claims(url, body), current, algorithm="none"),
    }[case]()
    response = await delivery.post_jobs(body, signature)
    if accepted:
        assert response.status_code == 200, response.text
        assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 1
    else:
        assert response.status_code == 401, response.text
        assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 0
        assert await conn.fetchval("SELECT status::text FROM embedq.jobs") == "dispatched"
        assert delivery.embedder.calls == []


async def test_a_transient_failure_is_retried_by_qstash(conn, delivery):
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('flaky')")
    delivery.embedder.fail_next = [RetryableError("provider overloaded (503)", retry_after=1)]
    await delivery.listener().run(drain=True)
    await delivery.qstash.wait_idle()
    await wait_for(lambda: _all_done(conn, 1))
    message_id = await conn.fetchval("SELECT message_id FROM embedq.jobs")
    attempts = delivery.qstash.attempts_of(message_id)
    assert [a.status for a in attempts] == [503, 200]
    assert attempts[0].retry_delay == 1  # our Retry-After, honoured
    assert await conn.fetchval("SELECT attempts FROM embedq.jobs") == 2


async def test_a_poison_job_is_dead_at_once_without_retries(conn, delivery):
    await conn.execute("INSERT INTO embedq_sample.posts (title, body) VALUES ('bad', 'POISON')")
    delivery.embedder.poison_marker = "POISON"
    await delivery.listener().run(drain=True)
    await delivery.qstash.wait_idle()
    message_id = await conn.fetchval("SELECT message_id FROM embedq.jobs")
    assert [a.status for a in delivery.qstash.attempts_of(message_id)] == [489]
    job = await conn.fetchrow("SELECT status::text, last_error FROM embedq.jobs")
    assert job["status"] == "dead" and "POISON" in job["last_error"]
    assert delivery.qstash.dead_letters  # QStash keeps it too, with its failure callback sent


async def test_a_job_of_another_model_delivered_here_is_dead_with_the_reason(conn, delivery):
    # the listener of a model being filled published to this webhook, which embeds with another
    await conn.execute("SELECT embedq.model_ensure('other-model', 'openai', 8)")
    await conn.execute("UPDATE embedq.models SET maintained = true WHERE name = 'other-model'")
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('for both models')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    other = await conn.fetchval("SELECT id FROM embedq.jobs WHERE model = 'other-model'")
    await conn.execute("SELECT embedq.jobs_claim('other-listener', 10, '1 hour', NULL, 'dispatched', 'other-model')")
    body = jobs_body([other])
    response = await delivery.post_jobs(
        body, sign(delivery.settings.qstash_current_signing_key, f"{delivery.webhook_url}/v1/jobs", body)
    )
    assert response.status_code == 489 and response.headers["upstash-nonretryable-error"] == "true"
    job = await conn.fetchrow("SELECT status::text, last_error FROM embedq.jobs WHERE id = $1", other)
    assert job["status"] == "dead" and "EMBEDQ_MODEL=other-model" in job["last_error"]
    assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 0


async def test_exhausted_retries_end_in_the_failure_callback(conn, delivery):
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('never works')")
    delivery.embedder.fail_next = [RetryableError("provider down (502)") for _ in range(10)]
    await delivery.listener().run(drain=True)
    await delivery.qstash.wait_idle()
    await wait_for(lambda: _status_is(conn, "failed"))
    job = await conn.fetchrow("SELECT last_error, attempts, failed_deliveries, message_id FROM embedq.jobs")
    # one failed delivery more (back to the queue: published again, or processed by a listener)
    assert job["last_error"].startswith("QStash message msg_")
    assert "QStash gave up after 2 retries: the webhook at" in job["last_error"]
    assert "answered 503" in job["last_error"] and "provider down (502)" in job["last_error"]
    assert (job["attempts"], job["failed_deliveries"], job["message_id"]) == (4, 1, None)


async def _status_is(conn, status: str) -> bool:
    return await conn.fetchval("SELECT status::text FROM embedq.jobs") == status


async def test_an_outage_falls_back_to_local_processing_then_qstash_resumes(conn, delivery):
    listener = delivery.listener()
    running = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.ready.wait(), 10)
        delivery.qstash.set_outage(True)
        for n in range(5):  # writes arrive while QStash answers 503
            await conn.execute(
                "INSERT INTO embedq_sample.courses (title) SELECT 'outage ' || $1 || '-' || g FROM "
                "generate_series(1, 20) g",
                str(n),
            )
            await asyncio.sleep(0.1)
        await wait_for(lambda: _all_done(conn, 100))
        assert listener.mode == "fallback"
        assert await conn.fetchval("SELECT mode FROM embedq.workers WHERE name = $1", listener.name) == "fallback"
        assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE message_id IS NOT NULL") == 0

        delivery.qstash.set_outage(False)
        await asyncio.sleep(0.6)  # the breaker's cool-down
        await conn.execute(
            "INSERT INTO embedq_sample.courses (title) SELECT 'after ' || g FROM generate_series(1, 20) g"
        )
        await wait_for(lambda: _all_done(conn, 120))
        assert listener.mode == "qstash"
        assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE message_id IS NOT NULL") == 20
        assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == 120
    finally:
        listener.stop()
        await running


async def test_duplicate_concurrent_deliveries_write_one_set_of_vectors(conn, delivery):
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'dup ' || g FROM generate_series(1, 40) g")
    ids = await dispatch_all(conn)
    body = jobs_body(ids)
    signature = sign(delivery.settings.qstash_current_signing_key, f"{delivery.webhook_url}/v1/jobs", body)
    first, second = await asyncio.gather(delivery.post_jobs(body, signature), delivery.post_jobs(body, signature))
    assert first.status_code == second.status_code == 200
    embedded = [t for call in delivery.embedder.calls for t in call]
    assert len(embedded) == 40 and len(set(embedded)) == 40  # each row embedded once
    assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 40
    assert (await job_statuses(conn)) == {"done": 40}
    again = await delivery.post_jobs(body, signature)  # a late redelivery of finished work
    assert again.status_code == 200 and json.loads(again.text)["skipped"] == sorted(ids)


async def test_malformed_and_oversized_bodies(conn, delivery):
    url = f"{delivery.webhook_url}/v1/jobs"
    key = delivery.settings.qstash_current_signing_key
    for body in (b"{not json", b'{"jobs": "x"}', b'{"jobs": []}', b'{"jobs": [{"id": "1"}]}', b"\xff\xfe"):
        response = await delivery.post_jobs(body, sign(key, url, body))
        assert response.status_code == 400, (body, response.text)
    huge = b'{"jobs": [' + b'{"id": 1},' * 200_000 + b'{"id": 2}]}'
    response = await delivery.post_jobs(huge, sign(key, url, huge))
    assert response.status_code == 413
    assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE status = 'processing'") == 0


async def test_failure_callback_and_maintenance_need_their_own_signatures(conn, delivery):
    body = json.dumps({"sourceMessageId": "msg_x", "status": 500, "retried": 3}).encode()
    jobs_signature = sign(delivery.settings.qstash_current_signing_key, f"{delivery.webhook_url}/v1/jobs", body)
    refused = await delivery.http.post(
        f"{delivery.webhook_url}/v1/failures", content=body, headers={"upstash-signature": jobs_signature}
    )
    assert refused.status_code == 401
    maintenance = await delivery.http.post(
        f"{delivery.webhook_url}/v1/maintenance",
        content=b"{}",
        headers={
            "upstash-signature": sign(
                delivery.settings.qstash_current_signing_key, f"{delivery.webhook_url}/v1/maintenance", b"{}"
            )
        },
    )
    assert maintenance.status_code == 200
    assert set(maintenance.json()) == {
        "pruned_jobs",
        "pruned_searches",
        "requeued_failed",
        "requeued_dead",
        "pruned_workers",
    }


async def test_health_status_and_search_routes(conn, delivery):
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('searchable')")
    await delivery.listener().run(drain=True)
    await delivery.qstash.wait_idle()
    await wait_for(lambda: _all_done(conn, 1))
    assert (await delivery.http.get(f"{delivery.webhook_url}/healthz")).json() == {"ok": True}
    status = (await delivery.http.get(f"{delivery.webhook_url}/v1/status")).json()
    assert status["totals"]["done"] == 1 and status["mode"] == "qstash"
    text = await conn.fetchval("SELECT content FROM embedq.embeddings")
    found = (await delivery.http.get(f"{delivery.webhook_url}/v1/search", params={"q": text, "k": 1})).json()
    assert found["results"][0]["content"] == text
    bad = await delivery.http.get(f"{delivery.webhook_url}/v1/search", params={"q": "x", "type": "nope"})
    assert bad.status_code == 400


async def test_an_api_token_closes_the_read_routes(conn, settings):
    async with delivery_setup(settings, api_token="read-token", admin_token="admin-token") as guarded:
        await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('private course')")
        await guarded.listener().run(drain=True)
        await wait_for(lambda: _all_done(conn, 1))
        base = guarded.webhook_url
        routes = ["/v1/status", "/v1/search?q=private", "/metrics"]
        for route in routes:
            refused = await guarded.http.get(base + route)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", route
            wrong = await guarded.http.get(base + route, headers={"Authorization": "Bearer wrong"})
            assert wrong.status_code == 401, route
            for token in ("read-token", "admin-token"):
                allowed = await guarded.http.get(base + route, headers={"Authorization": f"Bearer {token}"})
                assert allowed.status_code == 200, (route, token)
        assert (
            "private course"
            in (
                await guarded.http.get(
                    base + "/v1/search", params={"q": "private"}, headers={"Authorization": "Bearer read-token"}
                )
            ).text
        )
        assert (await guarded.http.get(base + "/v1/events")).status_code == 401
        assert (await guarded.http.get(base + "/v1/search?q=private&token=read-token")).status_code == 401
        async with guarded.http.stream("GET", base + "/v1/events?token=read-token") as events:
            assert events.status_code == 200
        assert (await guarded.http.get(base + "/healthz")).status_code == 200  # for load balancers


async def test_schedules_are_upserted_and_call_signed_maintenance(conn, delivery):
    from embedq.qstash.schedules import upsert_qstash_schedules
    from embedq.schedules import SCHEDULES

    await upsert_qstash_schedules(delivery.settings)
    await upsert_qstash_schedules(delivery.settings)  # a restart replaces, never piles up
    schedules = delivery.qstash.schedules
    assert sorted(schedules) == sorted(item.schedule_id for item in SCHEDULES)
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('stuck')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET status = 'failed', run_after = now() + interval '1 day'")
    message_id = delivery.qstash.trigger_schedule("embedq-retry-failed-weekly")
    await delivery.qstash.wait_idle()
    assert [a.status for a in delivery.qstash.attempts_of(message_id)] == [200]
    assert await conn.fetchval("SELECT status::text FROM embedq.jobs") == "pending"


async def test_secrets_never_reach_the_logs(conn, settings, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    async with delivery_setup(settings) as delivery:
        await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'c' || g FROM generate_series(1, 5) g")
        await delivery.listener().run(drain=True)
        await delivery.qstash.wait_idle()
        body = jobs_body([1])
        await delivery.post_jobs(body, sign("sig_wrong", f"{delivery.webhook_url}/v1/jobs", body))
        delivery.qstash.set_outage(True)
        await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('during outage')")
        await delivery.listener().run(drain=True)
        secrets = [
            delivery.settings.qstash_token,
            delivery.settings.qstash_current_signing_key,
            delivery.settings.qstash_next_signing_key,
        ]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "rejected delivery" in logged and "QStash is unreachable" in logged  # the paths did log
    for secret in secrets:
        assert secret not in logged


async def test_a_message_without_outcome_is_published_again(conn, settings):
    async with delivery_setup(settings, dispatch_timeout=0.5) as delivery:
        await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('lost in transit')")
        delivery.qstash.pause_delivery()  # QStash accepts, but never delivers
        listener = delivery.listener(rescue_interval=0.1)
        running = asyncio.create_task(listener.run())
        try:
            await wait_for(lambda: _message_count(delivery, 2))  # rescued, then published anew
            delivery.qstash.resume_delivery()
            await wait_for(lambda: _all_done(conn, 1))
        finally:
            listener.stop()
            await running
        assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 1
        ids = [m.deduplication_key for m in delivery.qstash.messages.values()]
        assert len(ids) >= 2 and len(set(ids)) == len(ids)  # each publish a new dedup id, none swallowed


async def _message_count(delivery: Delivery, at_least: int) -> bool:
    return delivery.qstash.counters.messages >= at_least


async def test_a_delivery_that_overtakes_the_publishers_commit_still_processes_the_jobs(conn, dsn, delivery):
    from embedq import db

    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'race ' || g FROM generate_series(1, 5) g")
    ids = await dispatch_all(conn)
    publisher = await db.connect(dsn, "embedq-tests-publisher")  # recording the message id, not committed yet
    transaction = publisher.transaction()
    await transaction.start()
    await publisher.execute("SELECT embedq.jobs_set_message($1::bigint[], 'msg_race', '1 hour')", ids)
    body = jobs_body(ids)
    delivered = asyncio.create_task(
        delivery.post_jobs(
            body, sign(delivery.settings.qstash_current_signing_key, f"{delivery.webhook_url}/v1/jobs", body)
        )
    )
    await asyncio.sleep(0.5)
    assert not delivered.done()  # the webhook waits for the publisher's transaction...
    await transaction.commit()
    await publisher.close()
    response = await delivered
    assert response.status_code == 200 and response.json()["accepted"] == ids  # ...then takes every job
    assert (await job_statuses(conn)) == {"done": 5}


async def test_a_job_held_back_by_another_job_of_its_row_is_redelivered(conn, delivery):
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('busy row') RETURNING id")
    ids = await dispatch_all(conn)
    # another job of the same row is being processed elsewhere right now
    await conn.execute(
        "INSERT INTO embedq.jobs (content_type, source_id, status, attempts, lease_expires_at) "
        "VALUES ('course', $1, 'processing', 1, now() + interval '1 minute')",
        str(course),
    )
    body = jobs_body(ids)
    response = await delivery.post_jobs(
        body, sign(delivery.settings.qstash_current_signing_key, f"{delivery.webhook_url}/v1/jobs", body)
    )
    assert response.status_code == 503 and response.json()["waiting"] == ids
    assert response.headers["retry-after"] == "5"
    assert await conn.fetchval("SELECT status::text FROM embedq.jobs WHERE id = $1", ids[0]) == "dispatched"


async def test_a_delivery_before_the_message_id_is_recorded_still_gets_its_failure_callback(conn, delivery):
    # QStash delivers at once: the webhook takes the job before the listener records the message id
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('overtaken')")
    (job_id,) = await dispatch_all(conn)
    await conn.fetch("SELECT * FROM embedq.jobs_accept(ARRAY[$1::bigint], 'webhook', '1 minute')", job_id)
    await conn.execute("SELECT embedq.jobs_set_message(ARRAY[$1::bigint], 'msg_overtaken', '1 hour')", job_id)
    assert await conn.fetchval("SELECT message_id FROM embedq.jobs WHERE id = $1", job_id) == "msg_overtaken"
    # the webhook fails it, to be redelivered by QStash (which gives up)
    await conn.fetch(
        "SELECT * FROM embedq.jobs_fail(ARRAY[$1::bigint], ARRAY[1], 'provider down', true, 1, 1, 0, '1 hour')", job_id
    )

    body = json.dumps({"sourceMessageId": "msg_overtaken", "retried": 3, "status": 503}).encode()
    url = f"{delivery.webhook_url}/v1/failures"
    response = await delivery.http.post(
        url, content=body, headers={"upstash-signature": sign(delivery.settings.qstash_current_signing_key, url, body)}
    )
    assert response.json() == {"failed": [job_id], "dead": []}


async def test_a_dispatch_claim_lasts_long_enough_to_publish_then_as_long_as_the_delivery(conn):
    # if the publisher never records its message (the database went away), the jobs come back soon
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('published'), ('publish unrecorded')")
    ids = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM embedq.jobs_claim('listener', 10, '2 minutes', NULL, 'dispatched') ORDER BY id"
        )
    ]
    await conn.execute("SELECT embedq.jobs_set_message($1::bigint[], 'msg_1', '1 hour')", ids[:1])
    left = [
        r[0]
        for r in await conn.fetch(
            "SELECT lease_expires_at - now() FROM embedq.jobs WHERE id = ANY ($1::bigint[]) ORDER BY id", ids
        )
    ]
    assert left[0] > timedelta(minutes=55) and left[1] <= timedelta(minutes=2)


async def test_every_route_answers_503_with_retry_after_while_the_database_is_away(conn, settings):
    app = create_app(settings, embedder=HashEmbedder())
    async with serve_app(app, lifespan="on") as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        await app.state.embedq.pool.close()  # every query now raises a connection error
        for route in ("/v1/status", "/v1/search?q=x"):
            answer = await http.get(route)
            assert answer.status_code == 503 and answer.headers["retry-after"] == "5", (route, answer.text)
            assert answer.json()["error"].startswith("database unavailable")
        assert (await http.get("/healthz")).status_code == 503
