"""The routes QStash calls: POST /v1/jobs (deliveries), /v1/failures (its failure callback) and
/v1/maintenance (its schedules).

No token: each request proves itself with `Upstash-Signature`, verified on the raw bytes before
anything is parsed (current key, then next; `sub` must equal the route's public URL). 401 bad
signature, 413 body too large, 400 malformed; a delivery's answer otherwise follows from what
processing made of its jobs (embedq.webhook.delivery).
"""

from __future__ import annotations

import json
import logging

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from embedq import db
from embedq.errors import InvalidInput, RetryableError
from embedq.jobs import JobStatus
from embedq.maintenance import run_maintenance
from embedq.operations import count_undelivered
from embedq.qstash.deliveries import from_failure_callback
from embedq.qstash.messages import parse_message
from embedq.qstash.signature import InvalidSignature, SignatureVerifier
from embedq.queries import query
from embedq.schedules import record_run
from embedq.settings import Settings
from embedq.webhook.delivery import delivery_answer, error_answer
from embedq.webhook.responses import error
from embedq.webhook.state import state_of

logger = logging.getLogger(__name__)

SIGNED_ROUTES = ("/v1/jobs", "/v1/failures", "/v1/maintenance", "/v1/doctor")
#: a lock or serialization conflict with another transaction: the delivery can simply come again
TRANSIENT_CONFLICTS = (
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    asyncpg.SerializationError,
    asyncpg.QueryCanceledError,
)
#: jobs still waiting for their turn once a delivery was processed (another job of their row is in progress)
HELD_BACK = (JobStatus.DISPATCHED, JobStatus.PENDING, JobStatus.FAILED)


class BodyTooLarge(Exception):
    pass


def build_verifiers(settings: Settings) -> dict[str, SignatureVerifier]:
    """One verifier per signed route (`sub` is the route's public URL); none without the keys and URL."""
    verifiers: dict[str, SignatureVerifier] = {}
    for route in SIGNED_ROUTES:
        url = settings.public_url(route)
        if settings.qstash_current_signing_key and url:
            verifiers[route] = SignatureVerifier(
                settings.qstash_current_signing_key, settings.qstash_next_signing_key, url
            )
    return verifiers


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise BodyTooLarge
    return bytes(chunks)


async def verified_body(request: Request, route: str) -> bytes | Response:
    """The raw body once its signature holds, or the answer refusing it."""
    state = state_of(request)
    try:
        body = await read_body(request, state.settings.max_body_bytes)
    except BodyTooLarge:
        return error(413, f"body larger than {state.settings.max_body_bytes} bytes")
    verifier = state.verifiers.get(route)
    if verifier is None:
        return error(401, "signature verification is not configured (QSTASH_*_SIGNING_KEY, EMBEDQ_WEBHOOK_URL)")
    try:
        verifier.verify(request.headers.get("upstash-signature"), body)
    except InvalidSignature as exc:
        logger.warning("rejected delivery", extra={"action": "verify", "route": route, "reason": str(exc)})
        return error(401, f"invalid signature: {exc}")
    return body


async def post_jobs(request: Request) -> Response:
    state = state_of(request)
    body = await verified_body(request, "/v1/jobs")
    if isinstance(body, Response):
        return body
    try:
        ids = list(parse_message(body).job_ids)
    except InvalidInput as exc:
        return error(400, str(exc))
    message_id = db.storable_text(request.headers.get("upstash-message-id", ""))[:200]
    try:
        jobs = await state.store.accept(ids, f"{state.name}:{message_id}", state.settings.lease_seconds)
        outcome = await state.processor.process(jobs) if jobs else None
    except TRANSIENT_CONFLICTS as exc:
        conflict = RetryableError(f"transient database conflict, retry: {exc}", retry_after=1)
        answer = error_answer(conflict)
        return error(answer.status, str(conflict), **answer.headers)
    skipped = sorted(set(ids) - {j.id for j in jobs})
    # Skipped jobs that are done, dead or processing (a duplicate delivery) need nothing more.
    held_back = [job.id for job in await state.store.get_many(skipped) if job.status in HELD_BACK] if skipped else []
    result: dict[str, object] = {"accepted": [j.id for j in jobs], "skipped": skipped, "waiting": held_back}
    if outcome is not None:
        result.update(done=outcome.done, failed=outcome.failed, dead=outcome.dead)
        if outcome.failed or outcome.dead:
            # why, for QStash's logs, its DLQ and the failure callback (embedq.qstash.deliveries)
            failed = await state.store.get_many((outcome.failed or outcome.dead)[:1])
            if failed and failed[0].last_error:
                result["error"] = failed[0].last_error[:500]
    answer = delivery_answer(outcome, held_back)
    return JSONResponse(result, status_code=answer.status, headers=answer.headers or None)


async def post_failures(request: Request) -> Response:
    """QStash's failure callback: it gave up on a message (its retries are exhausted, the
    message is in its DLQ). Its jobs still waiting for it count a failed delivery (and an
    attempt), with the cause and the likely fix as their error: a listener publishes them again,
    processes them itself after EMBEDQ_MAX_FAILED_DELIVERIES, or they die out of attempts."""
    state = state_of(request)
    body = await verified_body(request, "/v1/failures")
    if isinstance(body, Response):
        return body
    try:
        callback = json.loads(body)
        if not isinstance(callback, dict):
            raise ValueError("a JSON object is expected")
        undelivered = from_failure_callback(callback)
    except (UnicodeDecodeError, ValueError) as exc:
        return error(400, f"not a QStash failure callback: {exc}")
    reason = f"QStash gave up after {callback.get('retried', '?')} retries: {undelivered.reason}"
    transitions = await count_undelivered(state.store, undelivered, reason)
    return JSONResponse(
        {
            "failed": [t.id for t in transitions if t.status is not JobStatus.DEAD],
            "dead": [t.id for t in transitions if t.status is JobStatus.DEAD],
        }
    )


async def post_maintenance(request: Request) -> Response:
    state = state_of(request)
    body = await verified_body(request, "/v1/maintenance")
    if isinstance(body, Response):
        return body
    try:
        task = json.loads(body or b"{}").get("task", "maintenance")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return error(400, 'body must be JSON like {"task": "maintenance"} or {"task": "retry_failed"}')
    if task not in ("maintenance", "retry_failed"):
        return error(400, f"unknown task {task!r}")
    async with state.pool.acquire() as conn:
        report = await run_maintenance(conn, retry_all_failed=task == "retry_failed")
        await record_run(conn, task)
    return JSONResponse(report.as_json())


async def post_doctor(request: Request) -> Response:
    """`embedq doctor`'s probes: a delivery it signed itself (is this URL reachable, are these keys
    and this URL the webhook's?), then one through QStash whose nonce the webhook announces on
    the database, where the doctor waits for it."""
    state = state_of(request)
    body = await verified_body(request, "/v1/doctor")
    if isinstance(body, Response):
        return body
    try:
        nonce = json.loads(body or b"{}").get("nonce")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return error(400, 'body must be JSON like {"nonce": "..."}')
    if nonce is not None and not (isinstance(nonce, str) and 0 < len(nonce) <= 64 and nonce.isalnum()):
        return error(400, "nonce must be up to 64 letters and digits")
    if nonce:
        await state.pool.execute(query("doctor_announce"), nonce)
    return JSONResponse({"ok": True, "webhook": state.name})


routes = [
    Route("/v1/jobs", post_jobs, methods=["POST"]),
    Route("/v1/failures", post_failures, methods=["POST"]),
    Route("/v1/maintenance", post_maintenance, methods=["POST"]),
    Route("/v1/doctor", post_doctor, methods=["POST"]),
]
