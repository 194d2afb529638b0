"""The ASGI app QStash calls (Starlette).

POST /v1/jobs verifies Upstash-Signature on the raw bytes before anything else, accepts the
jobs it carries and runs the same processing as the listener. The status code follows from the
outcome: 200 done (or already done, or being done by a duplicate delivery), 503 or 429 with
Retry-After while a failure is transient (QStash redelivers), 489 with
Upstash-NonRetryable-Error when retrying cannot help, 401 bad signature, 400 malformed,
413 too large.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from embedq import db
from embedq.errors import EmbedqError, InvalidInput
from embedq.jobs import JobStatus
from embedq.maintenance import run_maintenance
from embedq.processing import Processor
from embedq.providers import create_embedder
from embedq.providers.base import Embedder
from embedq.qstash.messages import MAX_JOB_ID, parse_message
from embedq.qstash.signature import InvalidSignature, SignatureVerifier
from embedq.settings import Settings
from embedq.store import JobStore
from embedq.webhook.events import EventHub
from embedq.workers import worker_name

logger = logging.getLogger(__name__)

NON_RETRYABLE = 489
MAX_JOBS_LISTED = 500


class BodyTooLarge(Exception):
    pass


@dataclass
class State:
    settings: Settings
    pool: asyncpg.Pool
    store: JobStore
    embedder: Embedder
    processor: Processor
    verifiers: dict[str, SignatureVerifier]
    name: str
    events: EventHub


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


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


async def verified_body(request: Request, route: str) -> bytes | Response:
    state: State = request.app.state.embedq
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
    state: State = request.app.state.embedq
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
    except (
        asyncpg.DeadlockDetectedError,
        asyncpg.LockNotAvailableError,
        asyncpg.SerializationError,
        asyncpg.QueryCanceledError,
    ) as exc:
        return error(503, f"transient database conflict, retry: {exc}", **{"Retry-After": "1"})
    skipped = sorted(set(ids) - {j.id for j in jobs})
    # Skipped jobs that are done, dead or processing (a duplicate delivery) need nothing more.
    # One still waiting was held back because another job of its row is in progress: QStash
    # must bring it again, or it would sit `dispatched` until the dispatch timeout.
    waiting = (
        [
            job.id
            for job in await state.store.get_many(skipped)
            if job.status in (JobStatus.DISPATCHED, JobStatus.PENDING, JobStatus.FAILED)
        ]
        if skipped
        else []
    )
    result: dict[str, Any] = {"accepted": [j.id for j in jobs], "skipped": skipped, "waiting": waiting}
    if outcome is not None:
        result.update(done=outcome.done, failed=outcome.failed, dead=outcome.dead)
    if waiting and not (outcome and outcome.failed):
        return JSONResponse(result, status_code=503, headers={"Retry-After": "5"})
    if outcome is None:
        return JSONResponse(result)
    if outcome.failed:
        headers = {"Retry-After": str(math.ceil(outcome.retry_after))} if outcome.retry_after else {}
        return JSONResponse(result, status_code=503, headers=headers)
    if outcome.dead:
        return JSONResponse(result, status_code=NON_RETRYABLE, headers={"Upstash-NonRetryable-Error": "true"})
    return JSONResponse(result)


async def post_failures(request: Request) -> Response:
    """QStash's failure callback: retries are exhausted, the message is in its DLQ."""
    state: State = request.app.state.embedq
    body = await verified_body(request, "/v1/failures")
    if isinstance(body, Response):
        return body
    try:
        callback = json.loads(body)
        message_id = callback["sourceMessageId"]
        if not isinstance(message_id, str) or not message_id or len(message_id) > 200 or not message_id.isprintable():
            raise ValueError("sourceMessageId must be a short printable string")
        if not isinstance(callback.get("body") or "", str):
            raise ValueError("body must be the base64 text of the last answer")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return error(400, f"not a QStash failure callback: {exc}")
    reason = f"QStash gave up after {callback.get('retried', '?')} retries: last status {callback.get('status', '?')}"
    try:
        import base64

        answer = base64.b64decode(callback.get("body") or "").decode("utf-8", "replace").strip()
        if answer:
            reason += f": {answer[:500]}"
    except ValueError:
        pass  # the answer is only a detail of the reason
    dead = await state.store.dead_by_message(message_id, db.storable_text(reason))
    logger.warning(
        "message dead-lettered by QStash",
        extra={"action": "failure_callback", "message_id": message_id, "job_ids": dead},
    )
    return JSONResponse({"dead": dead})


async def post_maintenance(request: Request) -> Response:
    state: State = request.app.state.embedq
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
    return JSONResponse(report.as_json())


async def database_unavailable(request: Request, exc: Exception) -> Response:
    """Every route: the database is away (restarting, unreachable). QStash retries on 503."""
    return error(503, f"database unavailable: {exc}", **{"Retry-After": "5"})


async def get_healthz(request: Request) -> Response:
    state: State = request.app.state.embedq
    try:
        await state.pool.fetchval("SELECT 1")
    except db.CONNECTION_ERRORS as exc:
        return error(503, f"database unavailable: {exc}")
    return JSONResponse({"ok": True})


def read_denied(request: Request, *, allow_query_token: bool = False) -> Response | None:
    """The read routes (status, search, events, metrics) are open unless EMBEDQ_API_TOKEN is set;
    then they need it, or the admin token, as `Authorization: Bearer <token>`. /v1/events also
    takes `?token=`: a browser's EventSource cannot send headers."""
    settings = request.app.state.embedq.settings
    if not settings.api_token:
        return None
    given = bearer_token(request) or (request.query_params.get("token") if allow_query_token else None)
    if given and any(
        hmac.compare_digest(given.encode(), token.encode())
        for token in (settings.api_token, settings.admin_token)
        if token
    ):
        return None
    return error(401, "this route needs Authorization: Bearer <EMBEDQ_API_TOKEN>", **{"WWW-Authenticate": "Bearer"})


def bearer_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


async def get_status(request: Request) -> Response:
    from embedq.status import read_status

    if denied := read_denied(request):
        return denied
    state: State = request.app.state.embedq
    async with state.pool.acquire() as conn:
        status = await read_status(conn, mode="qstash" if state.settings.qstash_enabled else "local")
    return JSONResponse(status.as_json())


async def get_search(request: Request) -> Response:
    from embedq.search import search

    if denied := read_denied(request):
        return denied
    state: State = request.app.state.embedq
    text = request.query_params.get("q", "")
    try:
        k = int(request.query_params.get("k", "10"))
    except ValueError:
        return error(400, "k must be an integer")
    types = request.query_params.getlist("type") or None
    try:
        async with state.pool.acquire() as conn:
            hits = await search(conn, state.embedder, text, k=k, content_types=types, origin="http")
    except EmbedqError as exc:
        return error(400, str(exc))
    return JSONResponse({"results": [h.as_json() for h in hits]})


async def get_events(request: Request) -> Response:
    """Server-Sent Events of job state changes (queued, dispatched, done, failed, dead),
    optionally only of one content type and/or one source: `?type=course&source_id=42`."""
    from sse_starlette.sse import EventSourceResponse

    if denied := read_denied(request, allow_query_token=True):
        return denied
    state: State = request.app.state.embedq
    content_type = request.query_params.get("type")
    source_id = request.query_params.get("source_id")
    queue = state.events.subscribe()

    async def stream():
        try:
            while True:
                event = await queue.get()
                if content_type and event["content_type"] != content_type:
                    continue
                if source_id and event["source_id"] != source_id:
                    continue
                yield {"event": event["event"], "data": json.dumps(event)}
        finally:
            state.events.unsubscribe(queue)

    return EventSourceResponse(stream(), ping=15)


async def get_metrics(request: Request) -> Response:
    from embedq import metrics

    if denied := read_denied(request):
        return denied
    state: State = request.app.state.embedq
    try:
        await metrics.refresh_queue(state.store)
    except db.CONNECTION_ERRORS:
        pass  # the process metrics are still worth serving
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


# -- operator dashboard and admin routes (EMBEDQ_ADMIN_TOKEN) ------------------------------


def admin_denied(request: Request, *, allow_query_token: bool = False) -> Response | None:
    """None when the request carries the admin token; otherwise a 403 answer.
    The token comes as `Authorization: Bearer <token>`; only GET / also accepts `?token=`
    (a link to open the page): state-changing routes never do, so a cross-site form cannot
    trigger them."""
    expected = request.app.state.embedq.settings.admin_token
    if not expected:
        return error(403, "the admin routes are disabled: set EMBEDQ_ADMIN_TOKEN to enable them")
    given = bearer_token(request) or (request.query_params.get("token") if allow_query_token else None)
    if not given:
        return error(
            403,
            "admin token required: open /?token=<EMBEDQ_ADMIN_TOKEN>, "
            "or send Authorization: Bearer <EMBEDQ_ADMIN_TOKEN>",
        )
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return error(403, "wrong admin token")
    return None


async def get_dashboard(request: Request) -> Response:
    denied = admin_denied(request, allow_query_token=True)
    if denied is not None:
        return denied
    return HTMLResponse(
        files("embedq.webhook").joinpath("dashboard.html").read_text(encoding="utf-8"),
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the token is in the page's URL
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; frame-ancestors 'none'",
        },
    )


async def get_jobs(request: Request) -> Response:
    denied = admin_denied(request)
    if denied is not None:
        return denied
    state: State = request.app.state.embedq
    status = request.query_params.get("status", JobStatus.DEAD.value)
    if status not in {s.value for s in JobStatus}:
        return error(400, f"status must be one of {', '.join(s.value for s in JobStatus)}")
    try:
        limit = int(request.query_params.get("limit", "20"))
    except ValueError:
        return error(400, "limit must be an integer")
    if not 1 <= limit <= MAX_JOBS_LISTED:
        return error(400, f"limit must be between 1 and {MAX_JOBS_LISTED}")
    jobs = await state.store.recent(JobStatus(status), limit)
    shown = ("id", "content_type", "source_id", "status", "attempts", "last_error", "updated_at")
    return JSONResponse({"jobs": [{name: job.as_json()[name] for name in shown} for job in jobs]})


async def post_job_replay(request: Request) -> Response:
    denied = admin_denied(request)
    if denied is not None:
        return denied
    state: State = request.app.state.embedq
    job_id: int = request.path_params["id"]
    if not 1 <= job_id <= MAX_JOB_ID:
        return error(404, f"job {job_id} does not exist")
    requeued = await state.store.requeue([job_id])
    job = await state.store.get(job_id)
    if job is None:
        return error(404, f"job {job_id} does not exist")
    if not requeued:
        return error(409, f"job {job_id} is {job.status}; only failed, dead or done jobs can be replayed")
    merged_into = requeued[0].merged_into
    logger.info("job replayed", extra={"action": "replay", "job_id": job_id, "merged_into": merged_into})
    return JSONResponse({"id": job_id, "status": str(job.status), "merged_into": merged_into})


def build_verifiers(settings: Settings) -> dict[str, SignatureVerifier]:
    if not settings.qstash_current_signing_key or not settings.webhook_url:
        return {}
    return {
        route: SignatureVerifier(
            settings.qstash_current_signing_key, settings.qstash_next_signing_key, settings.public_url(route)
        )
        for route in ("/v1/jobs", "/v1/failures", "/v1/maintenance")
    }


def create_app(settings: Settings, *, dsn: str | None = None, embedder: Embedder | None = None) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        resolved_dsn = dsn or db.resolve_dsn(settings)
        pool = await db.create_pool(resolved_dsn, f"{settings.application_name}-webhook", min_size=1, max_size=10)
        used_embedder = embedder or create_embedder(settings)
        events = EventHub(resolved_dsn, f"{settings.application_name}-events")
        stop_events = asyncio.Event()
        events_task = asyncio.create_task(events.notifier.run(stop_events), name="embedq-events")
        try:
            async with pool.acquire() as conn:
                await db.ensure_migrated(conn)
            store = JobStore(pool)
            await store.ensure_model(used_embedder.model, used_embedder.provider, used_embedder.dimensions)
            app.state.embedq = State(
                settings=settings,
                pool=pool,
                store=store,
                embedder=used_embedder,
                processor=Processor(store, used_embedder, settings, redelivery_seconds=settings.dispatch_timeout),
                verifiers=build_verifiers(settings),
                name=f"webhook:{worker_name()}",
                events=events,
            )
            yield
        finally:
            stop_events.set()
            await events_task
            await pool.close()
            if embedder is None and hasattr(used_embedder, "aclose"):
                await used_embedder.aclose()

    return Starlette(
        routes=[
            Route("/", get_dashboard, methods=["GET"]),
            Route("/v1/jobs", post_jobs, methods=["POST"]),
            Route("/v1/jobs", get_jobs, methods=["GET"]),
            Route("/v1/jobs/{id:int}/replay", post_job_replay, methods=["POST"]),
            Route("/v1/failures", post_failures, methods=["POST"]),
            Route("/v1/maintenance", post_maintenance, methods=["POST"]),
            Route("/healthz", get_healthz, methods=["GET"]),
            Route("/v1/status", get_status, methods=["GET"]),
            Route("/v1/search", get_search, methods=["GET"]),
            Route("/v1/events", get_events, methods=["GET"]),
            Route("/metrics", get_metrics, methods=["GET"]),
        ],
        exception_handlers={error_class: database_unavailable for error_class in db.CONNECTION_ERRORS},
        lifespan=lifespan,
    )
