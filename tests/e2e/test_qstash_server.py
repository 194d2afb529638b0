"""The QStash-compatible test server, driven by the official `qstash` SDK over real HTTP.

A small receiver (Starlette on 127.0.0.1) records what QStash delivers; signatures are checked
with the SDK's `Receiver` and with our own `webhook.signature.SignatureVerifier`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from qstash import AsyncQStash, Receiver
from qstash.errors import DailyMessageLimitExceededError, QStashError, RateLimitExceededError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from embedq.qstash.signature import SignatureVerifier
from tests.qstash_server import DEFAULT_TOKEN, QStashServer, serve_app

pytestmark = pytest.mark.timeout(30)

TIME_SCALE = 0.001
#: one TLS context for the test's own clients (each new one would load the CA bundle, ~50 ms)
TLS = httpx.create_ssl_context()
PROJECT_ROOT = Path(__file__).resolve().parents[2]
JOBS = {"jobs": [{"id": 7, "content_type": "post", "source_id": "42", "op": "upsert"}]}


@dataclass
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RecordingReceiver:
    """Answers 200 unless told otherwise per path; records every request it gets."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    #: path -> responses for the next requests, in order (then 200)
    scripts: dict[str, list[Response]] = field(default_factory=dict)
    #: path -> seconds to wait before answering
    latency: dict[str, float] = field(default_factory=dict)
    #: path -> event to wait for before answering
    holds: dict[str, asyncio.Event] = field(default_factory=dict)
    active: int = 0
    max_active: int = 0

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    def answer(self, path: str, *responses: Response) -> None:
        self.scripts[path] = list(responses)

    def at(self, path: str) -> list[Delivery]:
        return [delivery for delivery in self.deliveries if delivery.path == path]

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        self.deliveries.append(Delivery(request.method, path, dict(request.headers), await request.body()))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(self.latency.get(path, 0.0))
            if path in self.holds:
                await self.holds[path].wait()
            script = self.scripts.get(path)
            return script.pop(0) if script else Response("ok")
        finally:
            self.active -= 1


@pytest.fixture
async def receiver():
    receiver = RecordingReceiver()
    async with serve_app(receiver.app()) as url:
        receiver.url = url
        yield receiver


@pytest.fixture
async def qstash(receiver):
    # after the receiver: stopped first, so its delivery connections close before the receiver stops
    async with QStashServer(time_scale=TIME_SCALE) as server:
        yield server


@pytest.fixture
async def client(qstash):
    client = AsyncQStash(qstash.token, base_url=qstash.url, retry=False)
    yield client
    await client.http._client.aclose()  # the SDK never closes its httpx client


@pytest.fixture
async def api(qstash):
    """Raw HTTP to the server, for what the SDK does not expose (status codes, DLQ retry)."""
    headers = {"Authorization": f"Bearer {qstash.token}"}
    async with httpx.AsyncClient(base_url=qstash.url, headers=headers, verify=TLS) as api:
        yield api


def verify_with_both(qstash: QStashServer, delivery: Delivery, url: str) -> dict[str, Any]:
    """Check a delivery's signature with the SDK's Receiver and with our verifier; our claims."""
    signature = delivery.headers["upstash-signature"]
    Receiver(qstash.current_signing_key, qstash.next_signing_key).verify(
        signature=signature, body=delivery.body.decode(), url=url
    )
    return SignatureVerifier(qstash.current_signing_key, qstash.next_signing_key, url).verify(signature, delivery.body)


def unpadded_b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# -- publishing and delivering ---------------------------------------------------------------


async def test_publish_json_delivers_the_body_signed_with_qstash_headers(qstash, client, receiver):
    url = f"{receiver.url}/v1/jobs"

    published = await client.message.publish_json(url=url, body=JOBS, headers={"X-Trace-Id": "trace-1"})
    await qstash.wait_idle()

    assert published.message_id.startswith("msg_")
    assert published.deduplicated is False
    [delivery] = receiver.at("/v1/jobs")
    assert delivery.method == "POST"
    assert delivery.body == json.dumps(JOBS).encode()
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["upstash-message-id"] == published.message_id
    assert delivery.headers["upstash-retried"] == "0"
    assert delivery.headers["user-agent"] == "Upstash-QStash"
    assert delivery.headers["x-trace-id"] == "trace-1"
    assert "upstash-forward-x-trace-id" not in delivery.headers
    assert "upstash-schedule-id" not in delivery.headers
    assert "authorization" not in delivery.headers

    claims = verify_with_both(qstash, delivery, url)
    header_segment = delivery.headers["upstash-signature"].split(".")[0]
    assert unpadded_b64decode(header_segment) == b'{"alg":"HS256","typ":"JWT"}'
    assert claims["iss"] == "Upstash"
    assert claims["sub"] == url
    assert claims["aud"] == ""
    assert claims["nbf"] == 0
    assert claims["exp"] == claims["iat"] + 300
    assert claims["jti"].startswith("jwt_")
    assert claims["body"] == base64.urlsafe_b64encode(hashlib.sha256(delivery.body).digest()).decode()
    assert claims["body"].endswith("=")
    assert qstash.counters.publish_calls == 1
    assert qstash.counters.messages == 1
    assert qstash.counters.attempts == {published.message_id: 1}


async def test_publish_keeps_method_content_type_and_raw_bytes(qstash, client, receiver):
    url = f"{receiver.url}/raw?kind=binary"
    body = bytes(range(256))

    published = await client.message.publish(
        url=url, body=body, content_type="application/octet-stream", method="PUT", headers={"Authorization": "Bearer x"}
    )
    await qstash.wait_idle()

    [delivery] = receiver.at("/raw")
    assert delivery.method == "PUT"
    assert delivery.body == body
    assert delivery.headers["content-type"] == "application/octet-stream"
    assert delivery.headers["authorization"] == "Bearer x"
    assert delivery.headers["upstash-message-id"] == published.message_id
    claims = SignatureVerifier(qstash.current_signing_key, None, url).verify(
        delivery.headers["upstash-signature"], delivery.body
    )
    assert claims["sub"] == url


async def test_batch_json_is_one_call_with_one_message_per_item(qstash, client, receiver, api):
    url = f"{receiver.url}/v1/jobs"

    responses = await client.message.batch_json([{"url": url, "body": {"job": n}} for n in range(3)])
    await qstash.wait_idle()

    ids = [response.message_id for response in responses]
    assert len(set(ids)) == 3
    deliveries = receiver.at("/v1/jobs")
    assert sorted(delivery.json()["job"] for delivery in deliveries) == [0, 1, 2]
    assert {delivery.headers["upstash-message-id"] for delivery in deliveries} == set(ids)
    for delivery in deliveries:
        verify_with_both(qstash, delivery, url)
    assert qstash.counters.batch_calls == 1
    assert qstash.counters.publish_calls == 0
    assert qstash.counters.messages == 3

    raw = await api.post("/v2/batch", json=[{"destination": url, "headers": {}, "body": "{}", "queue": None}])
    assert raw.status_code == 200
    assert list(raw.json()[0]) == ["messageId"]


async def test_delay_holds_the_message_which_can_be_read_and_cancelled(qstash, client, receiver):
    published = await client.message.publish_json(
        url=f"{receiver.url}/v1/jobs", body=JOBS, delay="1h", retries=2, headers={"X-Trace-Id": "trace-2"}
    )

    message = await client.message.get(published.message_id)
    assert message.url == f"{receiver.url}/v1/jobs"
    assert message.method == "POST"
    assert message.max_retries == 2
    assert message.not_before - message.created_at == 3_600_000
    assert message.body == json.dumps(JOBS)
    assert message.headers == {"Content-Type": ["application/json"], "X-Trace-Id": ["trace-2"]}

    await client.message.cancel(published.message_id)
    await qstash.wait_idle()

    with pytest.raises(QStashError, match="404"):
        await client.message.get(published.message_id)
    assert receiver.deliveries == []


async def test_short_delay_is_delivered(qstash, client, receiver):
    await client.message.publish_json(url=f"{receiver.url}/v1/jobs", body=JOBS, delay="10s")
    await qstash.wait_idle()

    assert len(receiver.at("/v1/jobs")) == 1


# -- retries, dead letters, callbacks --------------------------------------------------------


async def test_failed_deliveries_are_retried_with_exponential_backoff(qstash, client, receiver):
    receiver.answer("/v1/jobs", Response("boom", 500), Response("bad gateway", 502))

    published = await client.message.publish_json(url=f"{receiver.url}/v1/jobs", body=JOBS, retries=3)
    await qstash.wait_idle()

    deliveries = receiver.at("/v1/jobs")
    assert [delivery.headers["upstash-retried"] for delivery in deliveries] == ["0", "1", "2"]
    assert {delivery.headers["upstash-message-id"] for delivery in deliveries} == {published.message_id}
    attempts = qstash.attempts_of(published.message_id)
    assert [attempt.status for attempt in attempts] == [500, 502, 200]
    assert [attempt.retry_delay for attempt in attempts] == [
        pytest.approx(math.exp(2.5)),
        pytest.approx(math.exp(5.0)),
        None,
    ]
    assert qstash.counters.delivered == 1
    assert qstash.dead_letters == {}


RFC_1123_IN_TWO_SECONDS = "rfc-1123"


@pytest.mark.parametrize(
    ("retry_after", "expected_delay"),
    [
        ("1", 1.0),
        ("0", 0.0),
        ("1m5s", 65.0),
        (RFC_1123_IN_TWO_SECONDS, pytest.approx(2.0, abs=1.5)),
        ("172800", pytest.approx(math.exp(2.5))),  # beyond one day: the default backoff applies
    ],
)
async def test_retry_after_sets_the_next_delay(qstash, client, receiver, retry_after, expected_delay):
    if retry_after == RFC_1123_IN_TWO_SECONDS:
        retry_after = formatdate(time.time() + 2, usegmt=True)
    receiver.answer("/v1/jobs", Response("slow down", 429, headers={"Retry-After": retry_after}))

    published = await client.message.publish_json(url=f"{receiver.url}/v1/jobs", body=JOBS)
    await qstash.wait_idle()

    first, second = qstash.attempts_of(published.message_id)
    assert (first.status, second.status) == (429, 200)
    assert first.retry_delay == expected_delay


async def test_retry_delay_expression_replaces_the_backoff(qstash, api, receiver):
    receiver.answer("/v1/jobs", Response(status_code=500), Response(status_code=500))

    response = await api.post(
        f"/v2/publish/{receiver.url}/v1/jobs",
        content=b"{}",
        headers={"Upstash-Retry-Delay": "1000 * (1 + retried)", "Content-Type": "application/json"},
    )
    await qstash.wait_idle()

    delays = [attempt.retry_delay for attempt in qstash.attempts_of(response.json()["messageId"])]
    assert delays == [1.0, 2.0, None]


async def test_non_retryable_489_dead_letters_at_once_and_calls_the_failure_callback(qstash, client, receiver):
    receiver.answer("/v1/jobs", Response("job 7 is malformed", 489, headers={"Upstash-NonRetryable-Error": "true"}))
    failure_url = f"{receiver.url}/v1/failures"

    published = await client.message.publish_json(
        url=f"{receiver.url}/v1/jobs", body=JOBS, retries=3, failure_callback=failure_url
    )
    await qstash.wait_idle()

    assert len(receiver.at("/v1/jobs")) == 1
    dead = (await client.dlq.list()).messages
    assert [entry.message_id for entry in dead] == [published.message_id]
    entry = dead[0]
    assert entry.response_status == 489
    assert entry.response_body == "job 7 is malformed"
    assert entry.url == f"{receiver.url}/v1/jobs"
    assert entry.max_retries == 3
    assert entry.body == json.dumps(JOBS)

    [callback] = receiver.at("/v1/failures")
    claims = verify_with_both(qstash, callback, failure_url)
    assert claims["sub"] == failure_url
    assert callback.headers["content-type"] == "application/json"
    payload = callback.json()
    assert {
        "status",
        "header",
        "body",
        "retried",
        "maxRetries",
        "sourceMessageId",
        "url",
        "method",
        "sourceHeader",
        "sourceBody",
        "dlqId",
        "createdAt",
        "notBefore",
    } <= payload.keys()
    assert payload["status"] == 489
    assert payload["header"]["Upstash-Nonretryable-Error"] == ["true"]
    assert base64.b64decode(payload["body"]) == b"job 7 is malformed"
    assert payload["retried"] == 0
    assert payload["maxRetries"] == 3
    assert payload["sourceMessageId"] == published.message_id
    assert payload["url"] == f"{receiver.url}/v1/jobs"
    assert payload["method"] == "POST"
    assert payload["sourceHeader"]["Content-Type"] == ["application/json"]
    assert base64.b64decode(payload["sourceBody"]) == json.dumps(JOBS).encode()
    assert payload["dlqId"] == entry.dlq_id
    assert payload["createdAt"].isdigit() and payload["notBefore"].isdigit()

    assert (await client.dlq.get(entry.dlq_id)).message_id == published.message_id
    await client.dlq.delete(entry.dlq_id)
    assert (await client.dlq.list()).messages == []


async def test_489_without_the_non_retryable_header_is_retried(qstash, client, receiver):
    receiver.answer("/v1/jobs", Response(status_code=489))

    published = await client.message.publish_json(url=f"{receiver.url}/v1/jobs", body=JOBS, retries=1)
    await qstash.wait_idle()

    assert [attempt.status for attempt in qstash.attempts_of(published.message_id)] == [489, 200]


async def test_exhausted_retries_dead_letter_after_a_callback_per_attempt(qstash, client, receiver):
    receiver.answer("/v1/jobs", *(Response("down", 503) for _ in range(5)))

    published = await client.message.publish_json(
        url=f"{receiver.url}/v1/jobs",
        body=JOBS,
        retries=1,
        callback=f"{receiver.url}/v1/callbacks",
        failure_callback=f"{receiver.url}/v1/failures",
    )
    await qstash.wait_idle()

    assert len(receiver.at("/v1/jobs")) == 2
    callbacks = sorted((delivery.json() for delivery in receiver.at("/v1/callbacks")), key=lambda p: p["retried"])
    assert [(payload["status"], payload["retried"]) for payload in callbacks] == [(503, 0), (503, 1)]
    assert all("dlqId" not in payload for payload in callbacks)
    for delivery in receiver.at("/v1/callbacks"):
        verify_with_both(qstash, delivery, f"{receiver.url}/v1/callbacks")
    [failure] = receiver.at("/v1/failures")
    assert failure.json()["retried"] == 1
    assert failure.json()["maxRetries"] == 1
    assert failure.json()["sourceMessageId"] == published.message_id
    assert next(iter(qstash.dead_letters.values())).message.id == published.message_id
    assert qstash.counters.dead_lettered == 1
    assert qstash.counters.callbacks == 3


async def test_a_success_callback_gets_the_response(qstash, client, receiver):
    receiver.answer("/v1/jobs", Response('{"done": 1}', 200, media_type="application/json"))

    published = await client.message.publish_json(
        url=f"{receiver.url}/v1/jobs", body=JOBS, callback=f"{receiver.url}/v1/callbacks"
    )
    await qstash.wait_idle()

    [callback] = receiver.at("/v1/callbacks")
    payload = callback.json()
    assert payload["status"] == 200
    assert base64.b64decode(payload["body"]) == b'{"done": 1}'
    assert payload["sourceMessageId"] == published.message_id
    assert receiver.at("/v1/failures") == []


async def test_a_timeout_is_a_failed_attempt(qstash, api, receiver):
    receiver.holds["/v1/slow"] = answer = asyncio.Event()

    response = await api.post(
        f"/v2/publish/{receiver.url}/v1/slow",
        content=b"{}",
        headers={"Upstash-Timeout": "0.1s", "Upstash-Retries": "0"},
    )
    await qstash.wait_idle()
    answer.set()

    [attempt] = qstash.attempts_of(response.json()["messageId"])
    assert attempt.status == 0
    assert attempt.error is not None and attempt.error.startswith("timeout")
    assert len(qstash.dead_letters) == 1


async def test_a_dead_letter_can_be_retried(qstash, client, api, receiver):
    receiver.answer("/v1/jobs", Response("no", 489, headers={"Upstash-NonRetryable-Error": "true"}))
    published = await client.message.publish_json(url=f"{receiver.url}/v1/jobs", body=JOBS, deduplication_id="d-1")
    await qstash.wait_idle()
    [entry] = (await client.dlq.list()).messages

    response = await api.post(f"/v2/dlq/retry/{entry.dlq_id}", headers={"Upstash-Retries": "0"})
    await qstash.wait_idle()

    assert response.status_code == 201
    retried_id = response.json()["messageId"]
    assert retried_id != published.message_id
    assert [delivery.headers["upstash-message-id"] for delivery in receiver.at("/v1/jobs")] == [
        published.message_id,
        retried_id,
    ]
    assert receiver.at("/v1/jobs")[1].body == json.dumps(JOBS).encode()
    assert qstash.messages[retried_id].max_retries == 0
    assert (await client.dlq.list()).messages == []
    missing = await api.post(f"/v2/dlq/retry/{entry.dlq_id}")
    assert missing.status_code == 404
    assert "error" in missing.json()


# -- deduplication and flow control ----------------------------------------------------------


async def test_a_duplicate_deduplication_id_is_accepted_once(qstash, client, api, receiver):
    url = f"{receiver.url}/v1/jobs"

    first = await client.message.publish_json(url=url, body=JOBS, deduplication_id="job-7-attempt-1")
    second = await client.message.publish_json(url=url, body=JOBS, deduplication_id="job-7-attempt-1")
    raw = await api.post(f"/v2/publish/{url}", content=b"{}", headers={"Upstash-Deduplication-Id": "job-7-attempt-1"})
    replay = await client.message.publish_json(url=url, body=JOBS, deduplication_id="job-7-attempt-2")
    await qstash.wait_idle()

    assert second.message_id == first.message_id
    assert second.deduplicated is True
    assert raw.status_code == 202
    assert raw.json() == {"messageId": first.message_id, "deduplicated": True}
    assert replay.message_id != first.message_id
    assert replay.deduplicated is False
    assert len(receiver.at("/v1/jobs")) == 2
    assert qstash.counters.deduplicated == 2


async def test_content_based_deduplication(qstash, client, receiver):
    url = f"{receiver.url}/v1/jobs"

    first = await client.message.publish_json(url=url, body=JOBS, content_based_deduplication=True)
    same = await client.message.publish_json(url=url, body=JOBS, content_based_deduplication=True)
    other = await client.message.publish_json(url=url, body={"jobs": []}, content_based_deduplication=True)
    await qstash.wait_idle()

    assert (same.message_id, same.deduplicated) == (first.message_id, True)
    assert other.message_id != first.message_id
    assert len(receiver.at("/v1/jobs")) == 2


async def test_flow_control_parallelism_bounds_concurrent_deliveries(qstash, client, receiver):
    receiver.latency["/v1/slow"] = 0.02
    url = f"{receiver.url}/v1/slow"

    await client.message.batch_json(
        [{"url": url, "body": {"n": n}, "flow_control": {"key": "embedq", "parallelism": 2}} for n in range(8)]
    )
    await qstash.wait_idle()

    assert len(receiver.at("/v1/slow")) == 8
    assert receiver.max_active == 2

    # the same load without flow control overlaps more: the measurement can see a broken bound
    receiver.max_active = 0
    await client.message.batch_json([{"url": url, "body": {"n": n}} for n in range(8)])
    await qstash.wait_idle()
    assert receiver.max_active > 2


async def test_flow_control_settings_are_reported(qstash, client, receiver):
    qstash.pause_delivery()
    published = await client.message.publish_json(
        url=f"{receiver.url}/v1/jobs",
        body=JOBS,
        flow_control={"key": "embedq", "parallelism": 4, "rate": 10, "period": "60s"},
    )

    message = await client.message.get(published.message_id)

    assert message.flow_control is not None
    assert (message.flow_control.key, message.flow_control.parallelism) == ("embedq", 4)
    assert (message.flow_control.rate, message.flow_control.period) == (10, 60)
    qstash.resume_delivery()
    await qstash.wait_idle()


# -- switches for tests ----------------------------------------------------------------------


async def test_outage_answers_503_to_publish_and_batch(qstash, client, receiver):
    url = f"{receiver.url}/v1/jobs"
    qstash.set_outage()

    with pytest.raises(QStashError, match="503"):
        await client.message.publish_json(url=url, body=JOBS)
    with pytest.raises(QStashError, match="503"):
        await client.message.batch_json([{"url": url, "body": JOBS}])

    qstash.set_outage(False)
    await client.message.publish_json(url=url, body=JOBS)
    await qstash.wait_idle()
    assert qstash.counters.publish_calls == 2
    assert qstash.counters.batch_calls == 1
    assert qstash.counters.messages == 1
    assert len(receiver.deliveries) == 1


async def test_quota_answers_429_as_the_sdk_expects(qstash, client, receiver):
    url = f"{receiver.url}/v1/jobs"

    qstash.set_quota_exceeded("daily")
    with pytest.raises(DailyMessageLimitExceededError):
        await client.message.publish_json(url=url, body=JOBS)
    qstash.set_quota_exceeded("burst")
    with pytest.raises(RateLimitExceededError):
        await client.message.batch_json([{"url": url, "body": JOBS}])
    qstash.set_quota_exceeded(None)
    await client.message.publish_json(url=url, body=JOBS)

    assert qstash.counters.messages == 1


async def test_paused_delivery_holds_accepted_messages(qstash, client, receiver):
    qstash.pause_delivery()
    published = await client.message.publish_json(url=f"{receiver.url}/v1/jobs", body=JOBS)

    with pytest.raises(TimeoutError):
        await qstash.wait_idle(timeout=0.05)
    assert receiver.deliveries == []
    assert (await client.message.get(published.message_id)).message_id == published.message_id

    qstash.resume_delivery()
    await qstash.wait_idle()
    assert len(receiver.at("/v1/jobs")) == 1


async def test_control_endpoints_work_over_http(qstash, receiver):
    url = f"{receiver.url}/v1/jobs"
    headers = {"Authorization": f"Bearer {qstash.token}"}
    async with httpx.AsyncClient(base_url=qstash.url, verify=TLS) as http:
        assert (await http.post("/_control/outage", json={"enabled": True})).status_code == 200
        down = await http.post(f"/v2/publish/{url}", content=b"{}", headers=headers)
        assert (down.status_code, list(down.json())) == (503, ["error"])
        await http.post("/_control/outage", json={"enabled": False})

        await http.post("/_control/quota", json={"enabled": True, "kind": "burst"})
        limited = await http.post(f"/v2/publish/{url}", content=b"{}", headers=headers)
        assert limited.status_code == 429
        assert "Burst-RateLimit-Limit" in limited.headers
        await http.post("/_control/quota", json={"enabled": False})

        await http.post("/_control/pause")
        assert (await http.post(f"/v2/publish/{url}", content=b"{}", headers=headers)).status_code == 200
        assert (await http.post("/_control/wait-idle", params={"timeout": "0.05"})).status_code == 504
        await http.post("/_control/resume")
        assert (await http.post("/_control/wait-idle", params={"timeout": "10"})).status_code == 200

        counters = (await http.get("/_control/counters")).json()
        assert (counters["publish_calls"], counters["messages"], counters["deliveries"]) == (3, 1, 1)
        [attempt] = (await http.get("/_control/attempts")).json()
        assert attempt["status"] == 200
    assert len(receiver.deliveries) == 1


async def test_requests_without_the_token_are_refused(qstash, receiver):
    async with httpx.AsyncClient(base_url=qstash.url, verify=TLS) as http:
        missing = await http.post(f"/v2/publish/{receiver.url}/v1/jobs", content=b"{}")
        wrong = await http.get("/v2/dlq", headers={"Authorization": "Bearer not-the-token"})
    assert (missing.status_code, list(missing.json())) == (401, ["error"])
    assert wrong.status_code == 401

    wrong_client = AsyncQStash("not-the-token", base_url=qstash.url, retry=False)
    try:
        with pytest.raises(QStashError, match="401"):
            await wrong_client.message.publish_json(url=f"{receiver.url}/v1/jobs", body=JOBS)
    finally:
        await wrong_client.http._client.aclose()
    assert qstash.counters.messages == 0


async def test_invalid_requests_are_answered_400(qstash, api, receiver):
    not_a_url = await api.post("/v2/publish/my-url-group", content=b"{}")
    bad_retries = await api.post(f"/v2/publish/{receiver.url}/x", content=b"{}", headers={"Upstash-Retries": "many"})
    bad_batch = await api.post("/v2/batch", json={"destination": receiver.url})

    for response in (not_a_url, bad_retries, bad_batch):
        assert response.status_code == 400
        assert list(response.json()) == ["error"]


# -- schedules -------------------------------------------------------------------------------


async def test_schedules_are_stored_triggered_and_deleted(qstash, client, api, receiver):
    url = f"{receiver.url}/v1/maintenance"

    schedule_id = await client.schedule.create_json(
        destination=url, cron="*/5 * * * *", body={"task": "maintenance"}, retries=1
    )
    [listed] = await client.schedule.list()
    assert (listed.schedule_id, listed.cron, listed.destination) == (schedule_id, "*/5 * * * *", url)
    assert listed.retries == 1
    assert listed.next_schedule_time is not None and listed.next_schedule_time % 300_000 == 0

    message_id = qstash.trigger_schedule(schedule_id)
    triggered = await api.post(f"/_control/schedules/{schedule_id}/trigger")
    await qstash.wait_idle()

    deliveries = receiver.at("/v1/maintenance")
    assert [delivery.headers["upstash-message-id"] for delivery in deliveries] == [
        message_id,
        triggered.json()["messageId"],
    ]
    for delivery in deliveries:
        assert delivery.headers["upstash-schedule-id"] == schedule_id
        assert delivery.json() == {"task": "maintenance"}
        verify_with_both(qstash, delivery, url)
    assert (await client.schedule.get(schedule_id)).last_schedule_states is not None

    await client.schedule.pause(schedule_id)
    assert (await client.schedule.get(schedule_id)).paused is True
    await client.schedule.resume(schedule_id)
    await client.schedule.delete(schedule_id)
    assert await client.schedule.list() == []
    with pytest.raises(QStashError, match="400"):
        await client.schedule.create(destination=url, cron="every five minutes")


@pytest.mark.parametrize(
    ("cron", "zone", "hour", "minute"),
    [("CRON_TZ=America/New_York 30 4 * * *", "America/New_York", 4, 30), ("@daily", "UTC", 0, 0)],
)
async def test_a_schedule_reports_its_next_run_in_its_time_zone(client, receiver, cron, zone, hour, minute):
    schedule_id = await client.schedule.create(destination=f"{receiver.url}/v1/maintenance", cron=cron)

    next_run = (await client.schedule.get(schedule_id)).next_schedule_time

    assert next_run is not None
    upcoming = datetime.fromtimestamp(next_run / 1000, ZoneInfo(zone))
    assert (upcoming.hour, upcoming.minute, upcoming.second) == (hour, minute, 0)
    assert 0 < next_run / 1000 - time.time() <= 25 * 3600


# -- standalone ------------------------------------------------------------------------------


async def test_runs_standalone_and_prints_its_url():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.qstash_server",
        "--port",
        "0",
        "--no-cron",
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode().strip()
        async with httpx.AsyncClient(base_url=url, verify=TLS) as http:
            keys = await http.get("/v2/keys", headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
        assert url.startswith("http://127.0.0.1:")
        assert keys.json()["current"] == "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode == 0, stderr.decode()
    assert f"QSTASH_TOKEN={DEFAULT_TOKEN}" in stderr.decode()
