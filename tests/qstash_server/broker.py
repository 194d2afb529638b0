"""The delivery engine: accepted messages, their attempts, retries, callbacks, the DLQ, schedules.

Every wait (delay, not-before, backoff, Retry-After, flow-control periods) is multiplied by
`time_scale`, so tests can run QStash's real schedule of retries in milliseconds; what the
API reports (`notBefore`, `Attempt.retry_delay`) stays in unscaled, real-QStash seconds.
Delivery timeouts and the deduplication window are not scaled.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import itertools
import json
import logging
import secrets
import ssl
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.qstash_server.cron import Cron
from tests.qstash_server.flow_control import FlowControl, FlowGate
from tests.qstash_server.messages import (
    Attempt,
    CallbackTarget,
    DeadLetter,
    Message,
    NotFound,
    Schedule,
    canonical_header,
    millis,
    multi_header,
    new_id,
    parse_message,
)
from tests.qstash_server.retry import next_delay
from tests.qstash_server.signing import sign

logger = logging.getLogger(__name__)

USER_AGENT = "Upstash-QStash"
DEFAULT_DEDUPLICATION_WINDOW_SECONDS = 600.0
DEFAULT_DELIVERY_TIMEOUT_SECONDS = 900.0
_DEDUPLICATION_HEADERS = ("upstash-deduplication-id", "upstash-content-based-deduplication")
_SCHEDULE_TEMPLATE_EXCLUDED = ("upstash-cron", "upstash-schedule-id")


@dataclass
class Counters:
    """What the server saw; `messages` counts new messages from publish, batch, schedules and DLQ retries."""

    publish_calls: int = 0
    batch_calls: int = 0
    messages: int = 0
    deduplicated: int = 0
    #: callback and failure-callback messages created
    callbacks: int = 0
    #: delivery attempts, callbacks included
    deliveries: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    #: message id -> delivery attempts made so far
    attempts: dict[str, int] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Broker:
    def __init__(
        self,
        *,
        current_signing_key: str,
        next_signing_key: str,
        time_scale: float = 1.0,
        deduplication_window: float = DEFAULT_DEDUPLICATION_WINDOW_SECONDS,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT_SECONDS,
    ) -> None:
        self.current_signing_key = current_signing_key
        self.next_signing_key = next_signing_key
        self.time_scale = time_scale
        self.deduplication_window = deduplication_window
        self.delivery_timeout = delivery_timeout
        self.counters = Counters()
        self.messages: dict[str, Message] = {}
        self.dead_letters: dict[str, DeadLetter] = {}
        self.schedules: dict[str, Schedule] = {}
        #: every delivery attempt, in the order they were made
        self.attempts: list[Attempt] = []
        #: unexpected exceptions of delivery tasks (a bug in this server); wait_idle raises on them
        self.errors: list[BaseException] = []
        self.outage = False
        #: "daily" or "burst" while a quota is simulated as exceeded
        self.quota: str | None = None
        self._delivery_open = asyncio.Event()
        self._delivery_open.set()
        self._live: dict[str, asyncio.Task[None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._gates: dict[str, FlowGate] = {}
        self._deduplication: dict[str, tuple[str, float]] = {}
        self._dead_letter_sequence = itertools.count()
        self._http = httpx.AsyncClient(follow_redirects=False, verify=_tls_context())
        self._cron_task: asyncio.Task[None] | None = None

    # -- accepting ---------------------------------------------------------------------------

    def publish(self, message: Message) -> tuple[str, bool]:
        """Accept `message` for delivery; returns (message id, deduplicated)."""
        key = message.deduplication_key
        if key is not None:
            now = time.monotonic()
            if len(self._deduplication) > 10_000:
                self._deduplication = {k: seen for k, seen in self._deduplication.items() if seen[1] > now}
            original = self._deduplication.get(key)
            if original is not None and original[1] > now:
                self.counters.deduplicated += 1
                return original[0], True
            self._deduplication[key] = (message.id, now + self.deduplication_window)
        self.counters.messages += 1
        self._dispatch(message)
        return message.id, False

    def cancel(self, message_id: str) -> bool:
        """Stop a message that is not finished; one in flight gets no further attempt."""
        message = self.messages.get(message_id)
        if message is None or message.finished:
            return False
        message.cancel_requested = True
        if message.state != "ACTIVE":
            message.state = "CANCELLED"
            self._live[message_id].cancel()
        return True

    def live_message(self, message_id: str) -> Message:
        """A message still being delivered or retried (QStash forgets delivered ones)."""
        message = self.messages.get(message_id)
        if message is None or message.finished:
            raise NotFound(f"message {message_id} not found")
        return message

    # -- delivery switches -------------------------------------------------------------------

    def pause_delivery(self) -> None:
        self._delivery_open.clear()

    def resume_delivery(self) -> None:
        self._delivery_open.set()

    @property
    def delivery_paused(self) -> bool:
        return not self._delivery_open.is_set()

    async def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once every accepted message is delivered, dead-lettered or cancelled."""
        async with asyncio.timeout(timeout):
            while self._live:
                await self._idle.wait()
        if self.errors:
            raise RuntimeError(f"the QStash server failed internally: {self.errors[0]!r}") from self.errors[0]

    # -- dead letters ------------------------------------------------------------------------

    def dead_letter(self, dlq_id: str) -> DeadLetter:
        try:
            return self.dead_letters[dlq_id]
        except KeyError:
            raise NotFound(f"dlq message {dlq_id} not found") from None

    def retry_dead_letter(self, dlq_id: str, overrides: Mapping[str, str]) -> tuple[str, bool]:
        """Publish the dead message again (request headers override its configuration) and drop the entry."""
        original = self.dead_letter(dlq_id).message
        now = time.time()
        if original.kind == "message":
            headers = {
                name: value for name, value in original.request_headers.items() if name not in _DEDUPLICATION_HEADERS
            }
            headers.update(
                {name.lower(): value for name, value in overrides.items() if name.lower().startswith("upstash-")}
            )
            message = parse_message(
                original.url,
                headers,
                original.body,
                caller_ip=original.caller_ip,
                now=now,
                schedule_id=original.schedule_id,
                queue=original.queue,
            )
        else:
            message = dataclasses.replace(
                original,
                id=new_id("msg_"),
                created_at=now,
                not_before=now,
                state="CREATED",
                retried=0,
                cancel_requested=False,
                attempts=[],
            )
        del self.dead_letters[dlq_id]
        return self.publish(message)

    # -- schedules ---------------------------------------------------------------------------

    def create_schedule(self, destination: str, headers: Mapping[str, str], body: bytes, caller_ip: str) -> Schedule:
        """Create (or, with `Upstash-Schedule-Id`, replace) a schedule; raises BadRequest or CronError."""
        headers = {name.lower(): value for name, value in headers.items()}
        schedule = Schedule(
            id=headers.get("upstash-schedule-id") or new_id("scd_"),
            cron=Cron.parse(headers.get("upstash-cron", "")),
            destination=destination,
            headers={
                name: value
                for name, value in headers.items()
                if (name == "content-type" or name.startswith("upstash-")) and name not in _SCHEDULE_TEMPLATE_EXCLUDED
            },
            body=body,
            created_at=time.time(),
            caller_ip=caller_ip,
        )
        schedule.prototype()  # validates the message configuration
        self.schedules[schedule.id] = schedule
        return schedule

    def schedule(self, schedule_id: str) -> Schedule:
        try:
            return self.schedules[schedule_id]
        except KeyError:
            raise NotFound(f"schedule {schedule_id} not found") from None

    def trigger_schedule(self, schedule_id: str) -> str:
        """Run a schedule now, as its cron would; returns the message id."""
        schedule = self.schedule(schedule_id)
        now = time.time()
        message_id, _ = self.publish(schedule.prototype(now))
        schedule.last_schedule_time = now
        schedule.last_schedule_states = {message_id: "IN_PROGRESS"}
        return message_id

    def start_cron(self) -> None:
        """Fire schedules on their cron, in real wall-clock minutes (not scaled)."""
        self._cron_task = asyncio.get_running_loop().create_task(self._run_cron(), name="qstash:cron")

    async def _run_cron(self) -> None:
        while True:
            await asyncio.sleep(60.0 - time.time() % 60.0 + 0.05)
            minute = datetime.fromtimestamp(time.time(), UTC)
            for schedule in list(self.schedules.values()):
                if not schedule.paused and schedule.cron.matches(minute):
                    self.trigger_schedule(schedule.id)

    # -- delivering --------------------------------------------------------------------------

    def _dispatch(self, message: Message) -> None:
        self.messages[message.id] = message
        self.counters.attempts[message.id] = 0
        control = message.flow_control
        if control is None and message.queue is not None:
            control = FlowControl(key=f"queue:{message.queue}", parallelism=1)
        if control is not None:
            gate = self._gates.setdefault(control.key, FlowGate(control, self.time_scale))
            gate.control = control
        task = asyncio.get_running_loop().create_task(self._run(message, control), name=f"qstash:{message.id}")
        task.add_done_callback(self._record_failure)
        self._live[message.id] = task
        self._idle.clear()

    async def _run(self, message: Message, control: FlowControl | None) -> None:
        try:
            await self._sleep(message.not_before - time.time())
            gate = self._gates[control.key] if control is not None else None
            while True:
                await self._delivery_open.wait()
                if gate is not None:
                    await gate.acquire()
                try:
                    attempt = await self._attempt(message)
                finally:
                    if gate is not None:
                        await gate.release()
                if message.callback is not None:
                    self._send_callback(message, message.callback, attempt, "callback")
                if attempt.succeeded:
                    message.state = "DELIVERED"
                    self.counters.delivered += 1
                    return
                if message.cancel_requested:
                    message.state = "CANCELLED"
                    return
                if attempt.non_retryable or message.retried >= message.max_retries:
                    self._dead_letter(message, attempt)
                    return
                attempt.retry_delay = next_delay(
                    message.retried + 1, _single_values(attempt.headers), time.time(), message.retry_delay
                )
                message.state = "RETRY"
                message.retried += 1
                await self._sleep(attempt.retry_delay)
        finally:
            self._finish(message)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) * self.time_scale)

    async def _attempt(self, message: Message) -> Attempt:
        message.state = "ACTIVE"
        self.counters.deliveries += 1
        self.counters.attempts[message.id] += 1
        now = time.time()
        attempt = Attempt(message.id, message.url, message.retried, started_at=now)
        headers = {
            **message.headers,
            "Upstash-Message-Id": message.id,
            "Upstash-Retried": str(message.retried),
            "Upstash-Caller-Ip": message.caller_ip,
            "User-Agent": USER_AGENT,
            "Upstash-Signature": sign(self.current_signing_key, message.url, message.body, now),
        }
        if message.schedule_id is not None:
            headers["Upstash-Schedule-Id"] = message.schedule_id
        try:
            response = await self._http.request(
                message.method,
                message.url,
                content=message.body,
                headers=headers,
                timeout=message.timeout or self.delivery_timeout,
            )
        except httpx.TimeoutException as error:
            attempt.error = f"timeout: {type(error).__name__}"
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            attempt.error = f"{type(error).__name__}: {error}"
        else:
            attempt.status = response.status_code
            for name, value in response.headers.multi_items():
                attempt.headers.setdefault(canonical_header(name), []).append(value)
            attempt.body = response.content
        if attempt.error is not None:
            attempt.body = attempt.error.encode()
        message.attempts.append(attempt)
        self.attempts.append(attempt)
        logger.info(
            "delivered %s to %s: status %s, retried %s%s",
            message.id,
            message.url,
            attempt.status,
            attempt.retried,
            f" ({attempt.error})" if attempt.error else "",
            extra={"action": "deliver", "message_id": message.id, "status": attempt.status, "retried": attempt.retried},
        )
        return attempt

    def _dead_letter(self, message: Message, attempt: Attempt) -> None:
        message.state = "FAILED"
        self.counters.dead_lettered += 1
        dlq_id = f"{millis(time.time())}-{next(self._dead_letter_sequence)}"
        self.dead_letters[dlq_id] = DeadLetter(dlq_id, message, attempt)
        if message.failure_callback is not None:
            self._send_callback(message, message.failure_callback, attempt, "failure-callback", dlq_id)

    def _send_callback(
        self, source: Message, target: CallbackTarget, attempt: Attempt, kind: str, dlq_id: str | None = None
    ) -> None:
        payload: dict[str, Any] = {
            "status": attempt.status,
            "header": attempt.headers,
            "body": _base64(attempt.body),
            "retried": attempt.retried,
            "maxRetries": source.max_retries,
            "sourceMessageId": source.id,
            "url": source.url,
            "method": source.method,
            "sourceHeader": multi_header(source.headers),
            "sourceBody": _base64(source.body),
            # the callback documentation shows these two as strings of unix milliseconds
            "notBefore": str(millis(source.not_before)),
            "createdAt": str(millis(source.created_at)),
            "callerIP": source.caller_ip,
        }
        if dlq_id is not None:
            payload["dlqId"] = dlq_id
        if source.schedule_id is not None:
            payload["scheduleId"] = source.schedule_id
        now = time.time()
        callback = Message(
            id=new_id("msg_"),
            url=target.url,
            method=target.method,
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", **target.headers},
            max_retries=source.max_retries if target.retries is None else target.retries,
            created_at=now,
            not_before=now + target.delay,
            caller_ip=source.caller_ip,
            timeout=target.timeout,
            retry_delay=target.retry_delay,
            kind=kind,
        )
        self.counters.callbacks += 1
        self._dispatch(callback)

    def _finish(self, message: Message) -> None:
        self._live.pop(message.id, None)
        schedule = self.schedules.get(message.schedule_id or "")
        if schedule is not None and message.id in schedule.last_schedule_states and message.finished:
            schedule.last_schedule_states[message.id] = "SUCCESS" if message.state == "DELIVERED" else "FAIL"
        if not self._live:
            self._idle.set()

    def _record_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(task.exception())
            logger.error("qstash delivery task failed", exc_info=task.exception())

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        tasks = list(self._live.values())
        if self._cron_task is not None:
            tasks.append(self._cron_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._http.aclose()

    def rotate_signing_keys(self) -> None:
        self.current_signing_key = self.next_signing_key
        alphabet = string.ascii_letters + string.digits
        self.next_signing_key = "sig_" + "".join(secrets.choice(alphabet) for _ in range(28))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~50 ms per client."""
    return httpx.create_ssl_context()


def _single_values(headers: Mapping[str, list[str]]) -> dict[str, str]:
    return {name: values[0] for name, values in headers.items() if values}


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
