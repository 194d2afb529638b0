"""The HTTP face of the server: QStash's `/v2` REST API, and `/_control` switches for tests.

`/v2` routes need `Authorization: Bearer <token>` and answer errors as `{"error": "..."}`.
`/_control` routes need no token (a local test server):

    GET  /_control/counters                    the Counters, as JSON
    GET  /_control/attempts                    every delivery attempt, oldest first
    POST /_control/outage    {"enabled": true} every /v2 route answers 503 (false: back to normal)
    POST /_control/quota     {"enabled": true, "kind": "daily"|"burst"}  publish and batch answer 429
    POST /_control/pause | /_control/resume    hold deliveries / let them go
    POST /_control/wait-idle?timeout=10        200 once idle, 504 if not within the timeout
    POST /_control/schedules/{scheduleId}/trigger   run a schedule now: {"messageId": ...}
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tests.qstash_server.broker import Broker
from tests.qstash_server.cron import CronError
from tests.qstash_server.messages import BadRequest, NotFound, parse_message

Handler = Callable[[Request], Awaitable[Response]]
MAX_DLQ_PAGE = 100


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class QStashApi:
    def __init__(self, broker: Broker, token: str) -> None:
        self.broker = broker
        self.token = token

    def app(self) -> Starlette:
        guard = self._guard

        def publishing(handler: Handler) -> Handler:
            return guard(handler, counter="publish_calls", quota=True)

        return Starlette(
            routes=[
                Route("/v2/publish/{destination:path}", publishing(self.publish), methods=["POST"]),
                Route("/v2/enqueue/{queue}/{destination:path}", publishing(self.enqueue), methods=["POST"]),
                Route("/v2/batch", guard(self.batch, counter="batch_calls", quota=True), methods=["POST"]),
                Route("/v2/messages/{message_id}", guard(self.get_message), methods=["GET"]),
                Route("/v2/messages/{message_id}", guard(self.cancel_message), methods=["DELETE"]),
                Route("/v2/messages", guard(self.cancel_messages), methods=["DELETE"]),
                Route("/v2/dlq", guard(self.list_dead_letters), methods=["GET"]),
                Route("/v2/dlq", guard(self.delete_dead_letters), methods=["DELETE"]),
                Route("/v2/dlq/retry", guard(self.retry_dead_letters), methods=["POST"]),
                Route("/v2/dlq/retry/{dlq_id}", guard(self.retry_dead_letter), methods=["POST"]),
                Route("/v2/dlq/{dlq_id}", guard(self.get_dead_letter), methods=["GET"]),
                Route("/v2/dlq/{dlq_id}", guard(self.delete_dead_letter), methods=["DELETE"]),
                Route("/v2/schedules", guard(self.list_schedules), methods=["GET"]),
                Route("/v2/schedules/{schedule_id}/pause", guard(self.pause_schedule), methods=["PATCH", "POST"]),
                Route("/v2/schedules/{schedule_id}/resume", guard(self.resume_schedule), methods=["PATCH", "POST"]),
                Route("/v2/schedules/{schedule_id}", guard(self.get_schedule), methods=["GET"]),
                Route("/v2/schedules/{schedule_id}", guard(self.delete_schedule), methods=["DELETE"]),
                Route("/v2/schedules/{destination:path}", guard(self.create_schedule), methods=["POST"]),
                Route("/v2/keys", guard(self.signing_keys), methods=["GET"]),
                Route("/v2/keys/rotate", guard(self.rotate_signing_keys), methods=["POST"]),
                Mount("/_control", routes=self._control_routes()),
            ]
        )

    def _guard(self, handler: Handler, *, counter: str | None = None, quota: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            if counter is not None:
                setattr(self.broker.counters, counter, getattr(self.broker.counters, counter) + 1)
            if self.broker.outage:
                return error(503, "service unavailable (simulated outage)")
            if not self._authorized(request):
                return error(401, "unauthorized: a valid 'Authorization: Bearer <token>' header is required")
            if quota and self.broker.quota is not None:
                return _quota_exceeded(self.broker.quota)
            try:
                return await handler(request)
            except (BadRequest, CronError) as problem:
                return error(400, str(problem))
            except NotFound as problem:
                return error(404, str(problem))

        return endpoint

    def _authorized(self, request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode())

    # -- messages ----------------------------------------------------------------------------

    async def publish(self, request: Request) -> Response:
        return await self._publish(request, _destination(request, segments_before=3), queue=None)

    async def enqueue(self, request: Request) -> Response:
        return await self._publish(request, _destination(request, segments_before=4), request.path_params["queue"])

    async def _publish(self, request: Request, destination: str, queue: str | None) -> Response:
        message = parse_message(
            destination,
            request.headers,
            await request.body(),
            caller_ip=_caller_ip(request),
            now=time.time(),
            queue=queue,
        )
        return _published(*self.broker.publish(message))

    async def batch(self, request: Request) -> Response:
        items = _json(await request.body())
        if not isinstance(items, list):
            raise BadRequest("the batch body must be a JSON array")
        now = time.time()
        messages = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
                raise BadRequest(f"batch item {index} needs a string 'destination'")
            headers = item.get("headers") or {}
            body = item.get("body") or ""
            queue = item.get("queue")
            if not isinstance(headers, dict) or not isinstance(body, str) or not isinstance(queue, str | None):
                raise BadRequest(f"batch item {index}: 'headers' must be an object, 'body' and 'queue' strings")
            messages.append(
                parse_message(
                    item["destination"],
                    {str(name): str(value) for name, value in headers.items()},
                    body.encode(),
                    caller_ip=_caller_ip(request),
                    now=now,
                    queue=queue,
                )
            )
        results = []
        for message in messages:
            message_id, deduplicated = self.broker.publish(message)
            results.append({"messageId": message_id, **({"deduplicated": True} if deduplicated else {})})
        return JSONResponse(results)

    async def get_message(self, request: Request) -> Response:
        return JSONResponse(self.broker.live_message(request.path_params["message_id"]).view())

    async def cancel_message(self, request: Request) -> Response:
        if not self.broker.cancel(request.path_params["message_id"]):
            raise NotFound(f"message {request.path_params['message_id']} not found")
        return JSONResponse({"cancelled": 1}, status_code=202)

    async def cancel_messages(self, request: Request) -> Response:
        wanted = _json_list(await request.body(), "messageIds") or _list_param(request, "messageIds")
        ids = wanted or [message.id for message in self.broker.messages.values() if not message.finished]
        cancelled = sum(self.broker.cancel(message_id) for message_id in ids)
        return JSONResponse({"cancelled": cancelled}, status_code=202)

    # -- dead letters ------------------------------------------------------------------------

    async def list_dead_letters(self, request: Request) -> Response:
        params = request.query_params
        entries = list(self.broker.dead_letters.values())
        filters: dict[str, Callable[[Any], bool]] = {
            "messageId": lambda entry: entry.message.id == params["messageId"],
            "url": lambda entry: entry.message.url in _list_param(request, "url"),
            "scheduleId": lambda entry: entry.message.schedule_id in _list_param(request, "scheduleId"),
            "queueName": lambda entry: entry.message.queue in _list_param(request, "queueName"),
            "responseStatus": lambda entry: str(entry.response.status) in _list_param(request, "responseStatus"),
            "label": lambda entry: entry.message.label in _list_param(request, "label"),
            "fromDate": lambda entry: entry.message.created_at * 1000 >= int(params["fromDate"]),
            "toDate": lambda entry: entry.message.created_at * 1000 <= int(params["toDate"]),
        }
        try:
            for name, keep in filters.items():
                if name in params:
                    entries = [entry for entry in entries if keep(entry)]
            start = int(params.get("cursor") or 0)
            count = min(int(params.get("count") or MAX_DLQ_PAGE), MAX_DLQ_PAGE)
        except ValueError:
            raise BadRequest("invalid cursor, count or date") from None
        page: dict[str, Any] = {"messages": [entry.view() for entry in entries[start : start + count]]}
        if start + count < len(entries):
            page["cursor"] = str(start + count)
        return JSONResponse(page)

    async def get_dead_letter(self, request: Request) -> Response:
        return JSONResponse(self.broker.dead_letter(request.path_params["dlq_id"]).view())

    async def delete_dead_letter(self, request: Request) -> Response:
        self.broker.dead_letter(request.path_params["dlq_id"])
        del self.broker.dead_letters[request.path_params["dlq_id"]]
        return Response(status_code=200)

    async def delete_dead_letters(self, request: Request) -> Response:
        ids = _json_list(await request.body(), "dlqIds") or _list_param(request, "dlqIds")
        deleted = sum(self.broker.dead_letters.pop(dlq_id, None) is not None for dlq_id in ids)
        return JSONResponse({"deleted": deleted})

    async def retry_dead_letter(self, request: Request) -> Response:
        message_id, deduplicated = self.broker.retry_dead_letter(request.path_params["dlq_id"], request.headers)
        return _published(message_id, deduplicated, status=201)

    async def retry_dead_letters(self, request: Request) -> Response:
        ids = _list_param(request, "dlqIds") or list(self.broker.dead_letters)
        for dlq_id in ids:
            self.broker.dead_letter(dlq_id)
        responses = []
        for dlq_id in ids:
            message_id, deduplicated = self.broker.retry_dead_letter(dlq_id, request.headers)
            responses.append({"messageId": message_id, **({"deduplicated": True} if deduplicated else {})})
        return JSONResponse({"responses": responses}, status_code=201)

    # -- schedules ---------------------------------------------------------------------------

    async def create_schedule(self, request: Request) -> Response:
        schedule = self.broker.create_schedule(
            _destination(request, segments_before=3), request.headers, await request.body(), _caller_ip(request)
        )
        return JSONResponse({"scheduleId": schedule.id})

    async def list_schedules(self, request: Request) -> Response:
        now = time.time()
        return JSONResponse([schedule.view(now) for schedule in self.broker.schedules.values()])

    async def get_schedule(self, request: Request) -> Response:
        return JSONResponse(self.broker.schedule(request.path_params["schedule_id"]).view(time.time()))

    async def delete_schedule(self, request: Request) -> Response:
        self.broker.schedule(request.path_params["schedule_id"])
        del self.broker.schedules[request.path_params["schedule_id"]]
        return Response(status_code=200)

    async def pause_schedule(self, request: Request) -> Response:
        self.broker.schedule(request.path_params["schedule_id"]).paused = True
        return Response(status_code=200)

    async def resume_schedule(self, request: Request) -> Response:
        self.broker.schedule(request.path_params["schedule_id"]).paused = False
        return Response(status_code=200)

    # -- signing keys ------------------------------------------------------------------------

    async def signing_keys(self, request: Request) -> Response:
        return JSONResponse({"current": self.broker.current_signing_key, "next": self.broker.next_signing_key})

    async def rotate_signing_keys(self, request: Request) -> Response:
        self.broker.rotate_signing_keys()
        return await self.signing_keys(request)

    # -- test switches -----------------------------------------------------------------------

    def _control_routes(self) -> list[Route]:
        return [
            Route("/counters", self.control_counters, methods=["GET"]),
            Route("/attempts", self.control_attempts, methods=["GET"]),
            Route("/outage", self.control_outage, methods=["POST"]),
            Route("/quota", self.control_quota, methods=["POST"]),
            Route("/pause", self.control_pause, methods=["POST"]),
            Route("/resume", self.control_resume, methods=["POST"]),
            Route("/wait-idle", self.control_wait_idle, methods=["POST"]),
            Route("/schedules/{schedule_id}/trigger", self.control_trigger_schedule, methods=["POST"]),
        ]

    async def control_counters(self, request: Request) -> Response:
        return JSONResponse(self.broker.counters.view())

    async def control_attempts(self, request: Request) -> Response:
        return JSONResponse([attempt.view() for attempt in self.broker.attempts])

    async def control_outage(self, request: Request) -> Response:
        self.broker.outage = bool((await _switch(request)).get("enabled", True))
        return JSONResponse({"outage": self.broker.outage})

    async def control_quota(self, request: Request) -> Response:
        switch = await _switch(request)
        kind = switch.get("kind", "daily")
        if kind not in ("daily", "burst"):
            return error(400, "kind must be 'daily' or 'burst'")
        self.broker.quota = kind if switch.get("enabled", True) else None
        return JSONResponse({"quota": self.broker.quota})

    async def control_pause(self, request: Request) -> Response:
        self.broker.pause_delivery()
        return JSONResponse({"paused": True})

    async def control_resume(self, request: Request) -> Response:
        self.broker.resume_delivery()
        return JSONResponse({"paused": False})

    async def control_wait_idle(self, request: Request) -> Response:
        try:
            timeout = float(request.query_params.get("timeout", "10"))
        except ValueError:
            return error(400, "timeout must be a number of seconds")
        try:
            await self.broker.wait_idle(timeout)
        except TimeoutError:
            return error(504, f"not idle after {timeout} s")
        return JSONResponse({"idle": True})

    async def control_trigger_schedule(self, request: Request) -> Response:
        try:
            message_id = self.broker.trigger_schedule(request.path_params["schedule_id"])
        except NotFound as problem:
            return error(404, str(problem))
        return JSONResponse({"messageId": message_id})


def _destination(request: Request, *, segments_before: int) -> str:
    """The destination exactly as written after the route prefix (not decoded), plus any query."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    destination = raw_path.decode("latin-1").split("/", segments_before)[segments_before]
    if destination.lower().startswith(("http%3a", "https%3a")):
        destination = unquote(destination)
    if request.url.query:
        destination = f"{destination}?{request.url.query}"
    return destination


def _published(message_id: str, deduplicated: bool, status: int = 200) -> JSONResponse:
    if deduplicated:
        return JSONResponse({"messageId": message_id, "deduplicated": True}, status_code=202)
    return JSONResponse({"messageId": message_id}, status_code=status)


def _quota_exceeded(kind: str) -> JSONResponse:
    reset = str(int(time.time()) + 3600)
    if kind == "daily":
        headers = {"RateLimit-Limit": "1000", "RateLimit-Remaining": "0", "RateLimit-Reset": reset}
        return error(429, "daily message limit exceeded (simulated)", headers)
    headers = {"Burst-RateLimit-Limit": "100", "Burst-RateLimit-Remaining": "0", "Burst-RateLimit-Reset": reset}
    return error(429, "burst rate limit exceeded (simulated)", headers)


def _caller_ip(request: Request) -> str:
    return request.client.host if request.client else "127.0.0.1"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as problem:
        raise BadRequest(f"invalid JSON body: {problem}") from None


def _json_list(body: bytes, name: str) -> list[str]:
    """`{"<name>": [...]}` from a JSON body; [] when there is no body."""
    if not body.strip():
        return []
    payload = _json(body)
    values = payload.get(name) if isinstance(payload, dict) else None
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise BadRequest(f'the body must be {{"{name}": [string, ...]}}')
    return values


def _list_param(request: Request, name: str) -> list[str]:
    return [part for value in request.query_params.getlist(name) for part in value.split(",") if part]


async def _switch(request: Request) -> dict[str, Any]:
    body = await request.body()
    try:
        switch = json.loads(body) if body.strip() else {}
    except ValueError:
        return {}
    return switch if isinstance(switch, dict) else {}
