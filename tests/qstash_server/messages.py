"""Messages, dead letters and schedules: how publish headers become them, and their JSON views.

Views follow the QStash OpenAPI file: times in unix milliseconds, headers as `{name: [values]}`
with Go-canonical names, `body` when the bytes are UTF-8 else `bodyBase64`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.qstash_server.cron import Cron
from tests.qstash_server.durations import parse_duration
from tests.qstash_server.flow_control import FlowControl
from tests.qstash_server.retry import validate_retry_delay

DEFAULT_RETRIES = 3
MAX_RETRIES = 20
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
FORWARD_PREFIX = "upstash-forward-"
_ID_ALPHABET = string.ascii_letters + string.digits


class BadRequest(ValueError):
    """The request cannot become a message: answered 400 `{"error": ...}`."""


class NotFound(LookupError):
    """No such message, DLQ entry or schedule: answered 404 `{"error": ...}`."""


def new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(27))


def canonical_header(name: str) -> str:
    """Go's canonical MIME header form: `upstash-forward-x-id` -> `Upstash-Forward-X-Id`."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def multi_header(headers: Mapping[str, str]) -> dict[str, list[str]]:
    return {canonical_header(name): [value] for name, value in headers.items()}


def body_view(body: bytes, key: str = "body") -> dict[str, str]:
    try:
        return {key: body.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{key}Base64": base64.b64encode(body).decode("ascii")}


def millis(seconds: float) -> int:
    return int(seconds * 1000)


@dataclass
class CallbackTarget:
    """Where a (failure) callback goes and how it is delivered (`Upstash-Callback-*` headers)."""

    url: str
    method: str = "POST"
    retries: int | None = None
    timeout: float | None = None
    delay: float = 0.0
    retry_delay: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Attempt:
    """One delivery attempt, as the destination answered it (status 0: no answer)."""

    message_id: str
    url: str
    retried: int
    started_at: float
    status: int = 0
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    #: seconds (unscaled) the broker chose to wait before the next attempt, if any
    retry_delay: float | None = None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status < 300

    @property
    def non_retryable(self) -> bool:
        values = self.headers.get("Upstash-Nonretryable-Error", [])
        return self.status == 489 and any(value.strip().lower() == "true" for value in values)

    def view(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "url": self.url,
            "retried": self.retried,
            "startedAt": millis(self.started_at),
            "status": self.status,
            "error": self.error,
            "retryDelay": self.retry_delay,
        }


@dataclass
class Message:
    id: str
    url: str
    method: str
    body: bytes
    #: what the destination receives besides QStash's own headers: Content-Type, forwarded ones
    headers: dict[str, str]
    max_retries: int
    created_at: float
    not_before: float
    caller_ip: str
    #: the publish headers (lower-cased) the message was made from; a DLQ retry replays them
    request_headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    retry_delay: str | None = None
    flow_control: FlowControl | None = None
    callback: CallbackTarget | None = None
    failure_callback: CallbackTarget | None = None
    schedule_id: str | None = None
    queue: str | None = None
    label: str | None = None
    deduplication_key: str | None = None
    #: "message", "callback" or "failure-callback"
    kind: str = "message"
    #: CREATED, ACTIVE (in flight), RETRY, DELIVERED, FAILED, CANCELLED
    state: str = "CREATED"
    retried: int = 0
    cancel_requested: bool = False
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.state in {"DELIVERED", "FAILED", "CANCELLED"}

    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "messageId": self.id,
            "url": self.url,
            "method": self.method,
            "header": multi_header(self.headers),
            **body_view(self.body),
            "maxRetries": self.max_retries,
            "notBefore": millis(self.not_before),
            "createdAt": millis(self.created_at),
            "callerIP": self.caller_ip,
        }
        optional = {
            "callback": self.callback and self.callback.url,
            "callbackHeader": self.callback and self.callback.headers and multi_header(self.callback.headers),
            "failureCallback": self.failure_callback and self.failure_callback.url,
            "failureCallbackHeader": self.failure_callback
            and self.failure_callback.headers
            and multi_header(self.failure_callback.headers),
            "scheduleId": self.schedule_id,
            "queueName": self.queue,
            "label": self.label,
            "retryDelayExpression": self.retry_delay,
        }
        view.update({name: value for name, value in optional.items() if value})
        if self.flow_control is not None:
            view.update(flow_control_view(self.flow_control))
        return view


def flow_control_view(control: FlowControl) -> dict[str, Any]:
    view: dict[str, Any] = {"flowControlKey": control.key}
    if control.parallelism is not None:
        view["parallelism"] = control.parallelism
    if control.rate is not None:
        view["rate"] = control.rate
        view["period"] = int(control.period)
    return view


@dataclass
class DeadLetter:
    dlq_id: str
    message: Message
    response: Attempt

    def view(self) -> dict[str, Any]:
        return {
            **self.message.view(),
            "dlqId": self.dlq_id,
            "responseStatus": self.response.status,
            "responseHeader": self.response.headers,
            **body_view(self.response.body, "responseBody"),
        }


@dataclass
class Schedule:
    id: str
    cron: Cron
    destination: str
    #: the create request's headers, lower-cased, replayed on every run
    headers: dict[str, str]
    body: bytes
    created_at: float
    caller_ip: str
    paused: bool = False
    last_schedule_time: float | None = None
    last_schedule_states: dict[str, str] = field(default_factory=dict)

    def prototype(self, now: float = 0.0) -> Message:
        """The message a run at `now` publishes (a fresh id each time)."""
        return parse_message(
            self.destination,
            self.headers,
            self.body,
            caller_ip=self.caller_ip,
            now=now,
            schedule_id=self.id,
            queue=self.headers.get("upstash-queue-name"),
        )

    def view(self, now: float) -> dict[str, Any]:
        message = self.prototype()
        view: dict[str, Any] = {
            "scheduleId": self.id,
            "cron": self.cron.expression,
            "destination": self.destination,
            "createdAt": millis(self.created_at),
            "method": message.method,
            "header": multi_header(message.headers),
            **body_view(self.body),
            "retries": message.max_retries,
            "isPaused": self.paused,
            "callerIP": self.caller_ip,
        }
        if message.not_before:
            view["delay"] = int(message.not_before)
        optional = {
            "callback": message.callback and message.callback.url,
            "failureCallback": message.failure_callback and message.failure_callback.url,
            "timeout": message.timeout and int(message.timeout),
            "retryDelayExpression": message.retry_delay,
            "label": message.label,
            "queueName": message.queue,
            "lastScheduleTime": self.last_schedule_time and millis(self.last_schedule_time),
            "lastScheduleStates": dict(self.last_schedule_states),
        }
        view.update({name: value for name, value in optional.items() if value})
        upcoming = self.cron.next_after(datetime.fromtimestamp(now, UTC))
        if upcoming is not None:
            view["nextScheduleTime"] = millis(upcoming.timestamp())
        if message.flow_control is not None:
            view.update(flow_control_view(message.flow_control))
        return view


def parse_message(
    destination: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    caller_ip: str,
    now: float,
    schedule_id: str | None = None,
    queue: str | None = None,
) -> Message:
    """A message from publish headers (lower-cased names); raises BadRequest.

    `not_before` is `now` plus `Upstash-Delay`, or `Upstash-Not-Before`, which wins.
    """
    headers = {name.lower(): value for name, value in headers.items()}
    url = _destination_url(destination)
    method = headers.get("upstash-method", "POST").upper()
    if method not in METHODS:
        raise BadRequest(f"invalid Upstash-Method {method!r}")
    delivered: dict[str, str] = {}
    if "content-type" in headers:
        delivered["Content-Type"] = headers["content-type"]
    for name, value in headers.items():
        if name.startswith(FORWARD_PREFIX) and len(name) > len(FORWARD_PREFIX):
            delivered[canonical_header(name[len(FORWARD_PREFIX) :])] = value

    not_before = now
    if "upstash-delay" in headers:
        not_before = now + _duration(headers, "upstash-delay")
    if "upstash-not-before" in headers:
        not_before = float(_integer(headers, "upstash-not-before", minimum=0))

    flow_control = None
    if "upstash-flow-control-key" in headers:
        try:
            flow_control = FlowControl.parse(
                headers["upstash-flow-control-key"], headers.get("upstash-flow-control-value", "")
            )
        except ValueError as error:
            raise BadRequest(str(error)) from None

    retry_delay = headers.get("upstash-retry-delay")
    if retry_delay is not None:
        try:
            validate_retry_delay(retry_delay)
        except ValueError as error:
            raise BadRequest(str(error)) from None

    return Message(
        id=new_id("msg_"),
        url=url,
        method=method,
        body=body,
        headers=delivered,
        max_retries=_integer(headers, "upstash-retries", default=DEFAULT_RETRIES, maximum=MAX_RETRIES),
        created_at=now,
        not_before=not_before,
        caller_ip=caller_ip,
        request_headers={
            name: value for name, value in headers.items() if name == "content-type" or name.startswith("upstash-")
        },
        timeout=_duration(headers, "upstash-timeout") if "upstash-timeout" in headers else None,
        retry_delay=retry_delay,
        flow_control=flow_control,
        callback=_callback(headers, "upstash-callback"),
        failure_callback=_callback(headers, "upstash-failure-callback"),
        schedule_id=schedule_id,
        queue=queue,
        label=headers.get("upstash-label"),
        deduplication_key=_deduplication_key(url, headers, body),
    )


def _destination_url(destination: str) -> str:
    if not destination.lower().startswith(("http://", "https://")):
        raise BadRequest(
            f"invalid destination {destination!r}: a URL with http:// or https:// is required "
            "(URL groups are not supported by this server)"
        )
    try:
        url = httpx.URL(destination)
    except httpx.InvalidURL as error:
        raise BadRequest(f"invalid destination {destination!r}: {error}") from None
    if not url.host:
        raise BadRequest(f"invalid destination {destination!r}: no host")
    return destination


def _callback(headers: Mapping[str, str], prefix: str) -> CallbackTarget | None:
    url = headers.get(prefix)
    if url is None:
        return None
    _destination_url(url)
    forward = f"{prefix}-forward-"
    target = CallbackTarget(
        url=url,
        method=headers.get(f"{prefix}-method", "POST").upper(),
        headers={
            canonical_header(name[len(forward) :]): value
            for name, value in headers.items()
            if name.startswith(forward) and len(name) > len(forward)
        },
        retry_delay=headers.get(f"{prefix}-retry-delay"),
    )
    if target.method not in METHODS:
        raise BadRequest(f"invalid {canonical_header(prefix)}-Method {target.method!r}")
    if f"{prefix}-retries" in headers:
        target.retries = _integer(headers, f"{prefix}-retries", maximum=MAX_RETRIES)
    if f"{prefix}-timeout" in headers:
        target.timeout = _duration(headers, f"{prefix}-timeout")
    if f"{prefix}-delay" in headers:
        target.delay = _duration(headers, f"{prefix}-delay")
    return target


def _deduplication_key(url: str, headers: Mapping[str, str], body: bytes) -> str | None:
    if "upstash-deduplication-id" in headers:
        return "id:" + headers["upstash-deduplication-id"]
    if headers.get("upstash-content-based-deduplication", "").strip().lower() == "true":
        digest = hashlib.sha256(url.encode())
        for name in sorted(headers):
            if name != "upstash-content-based-deduplication" and (
                name == "content-type" or name.startswith("upstash-")
            ):
                digest.update(f"\n{name}:{headers[name]}".encode())
        digest.update(b"\n\n" + body)
        return "content:" + digest.hexdigest()
    return None


def _duration(headers: Mapping[str, str], name: str) -> float:
    try:
        return parse_duration(headers[name])
    except ValueError:
        raise BadRequest(f"invalid {canonical_header(name)} {headers[name]!r}") from None


def _integer(
    headers: Mapping[str, str],
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int | None = None,
) -> int:
    if name not in headers and default is not None:
        return default
    try:
        value = int(headers[name])
    except ValueError:
        raise BadRequest(f"invalid {canonical_header(name)} {headers[name]!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise BadRequest(f"{canonical_header(name)} must be {allowed}")
    return value
