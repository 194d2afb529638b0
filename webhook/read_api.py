"""The read API, for applications and monitoring: GET /v1/status, /v1/history, /v1/search,
/v1/events, /v1/rows/{content_type}/{source_id}, /metrics (scope "read": open unless
EMBEDQ_API_TOKEN is set) and /healthz (always open)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse
from starlette.authentication import requires
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from embedq import db, metrics
from embedq.errors import EmbedqError
from embedq.history import read_history
from embedq.rows import row_status
from embedq.search import parse_filters, search
from embedq.status import read_status
from embedq.webhook.auth import READ
from embedq.webhook.responses import error
from embedq.webhook.state import state_of

#: keep-alive comment on an idle event stream, so proxies do not close it
EVENTS_PING_SECONDS = 15
#: a client that reads nothing for this long is gone: its stream ends
EVENTS_SEND_TIMEOUT_SECONDS = 30


async def get_healthz(request: Request) -> Response:
    state = state_of(request)
    try:
        await state.pool.fetchval("SELECT 1")
    except db.CONNECTION_ERRORS as exc:
        return error(503, f"database unavailable: {exc}")
    return JSONResponse({"ok": True})


@requires(READ, status_code=401)
async def get_status(request: Request) -> Response:
    state = state_of(request)
    async with state.pool.acquire() as conn:
        status = await read_status(conn, mode="qstash" if state.settings.qstash_enabled else "local")
    return JSONResponse(status.as_json())


@requires(READ, status_code=401)
async def get_history(request: Request) -> Response:
    """The last hour minute by minute (embedq.history): queue depth and write -> vector latency
    by priority, as the dashboard plots them."""
    async with state_of(request).pool.acquire() as conn:
        history = await read_history(conn)
    return JSONResponse(history.as_json())


@requires(READ, status_code=401)
async def get_search(request: Request) -> Response:
    state = state_of(request)
    params = request.query_params
    text = params.get("q", "")
    try:
        k = int(params.get("k", "10"))
        offset = int(params.get("offset", "0"))
        min_score = float(params["min_score"]) if params.get("min_score") else None
    except ValueError:
        return error(400, "k and offset must be integers, min_score a number")
    types = params.getlist("type") or None
    try:
        filters = parse_filters(params.getlist("filter"))
        async with state.pool.acquire() as conn:
            hits = await search(
                conn,
                state.embedder,
                text,
                k=k,
                content_types=types,
                origin="http",
                hybrid=params.get("hybrid", "").lower() in ("1", "true", "yes", "on"),
                min_score=min_score,
                filters=filters,
                chunks=params.get("chunks", "").lower() in ("1", "true", "yes", "on"),
                offset=offset,
            )
    except EmbedqError as exc:
        return error(400, str(exc))
    return JSONResponse({"results": [h.as_json() for h in hits]})


@requires(READ, status_code=401)
async def get_events(request: Request) -> Response:
    """Server-Sent Events of job state changes (queued, processing, dispatched, done, failed,
    dead), optionally of one content type and/or one row: `?type=course&source_id=42`.
    `Last-Event-ID` resumes after the event it names (embedq.webhook.events)."""
    hub = state_of(request).events
    last_event_id = request.headers.get("last-event-id")
    content_type = request.query_params.get("type") or None
    source_id = request.query_params.get("source_id") or None

    # subscribed before the answer starts: a client that has the headers misses nothing after them
    subscription = hub.subscribe(last_event_id, content_type=content_type, source_id=source_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in subscription.server_sent_events():
                yield event
        finally:
            hub.unsubscribe(subscription)

    return EventSourceResponse(
        stream(),
        ping=EVENTS_PING_SECONDS,
        send_timeout=EVENTS_SEND_TIMEOUT_SECONDS,
        background=BackgroundTask(hub.unsubscribe, subscription),  # a stream that never started (HEAD)
    )


@requires(READ, status_code=401)
async def get_row(request: Request) -> Response:
    """A row's embedding state (embedq.rows): current, queued, processing, failed, dead or
    missing, with its job and last error. An application asks once when it subscribes to
    /v1/events for the row, then follows the events."""
    state = state_of(request)
    content_type: str = request.path_params["content_type"]
    source_id: str = request.path_params["source_id"]
    sources = await state.store.sources()
    if content_type not in sources:
        known = ", ".join(sorted(sources)) or "none"
        return error(404, f"unknown content type {content_type[:60]!r} (registered: {known})")
    status = await row_status(state.pool, content_type, db.storable_text(source_id))
    return JSONResponse(status.as_json())


@requires(READ, status_code=401)
async def get_metrics(request: Request) -> Response:
    state = state_of(request)
    try:
        await metrics.refresh_queue(state.store)
    except db.CONNECTION_ERRORS:
        pass  # the process metrics are still worth serving
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [
    Route("/healthz", get_healthz, methods=["GET"]),
    Route("/v1/status", get_status, methods=["GET"]),
    Route("/v1/history", get_history, methods=["GET"]),
    Route("/v1/search", get_search, methods=["GET"]),
    Route("/v1/events", get_events, methods=["GET"]),
    Route("/v1/rows/{content_type}/{source_id:path}", get_row, methods=["GET"]),
    Route("/metrics", get_metrics, methods=["GET"]),
]
