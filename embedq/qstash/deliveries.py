"""Why QStash could not deliver a message, in words an operator can act on.

QStash reports a message it gave up on twice: to the failure callback (POST /v1/failures, when
that can reach the webhook) and in its dead-letter queue (GET /v2/dlq, which a listener reads
when it cannot). Both carry the last answer: its status, headers and body, or no status when
there was no answer at all. `diagnose` turns that into a reason naming the cause and the likely
fix; it is recorded as the jobs' `last_error`, logged, and shown by `embedq status`.

    diagnose(401, '{"error": "invalid signature: ..."}', "https://embedq.example.com/v1/jobs")
    -> "the webhook at https://... answered 401 (invalid signature: ...): do QSTASH_CURRENT_SIGNING_KEY /
       QSTASH_NEXT_SIGNING_KEY on the webhook match the QStash account's signing keys?"

A pure function, tested by a table (tests/unit/test_delivery_diagnosis.py).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from embedq.errors import InvalidInput
from embedq.qstash.messages import parse_message

#: how much of the webhook's answer a reason quotes
DETAIL_MAX_CHARS = 300


@dataclass(frozen=True)
class Undelivered:
    """One message QStash gave up on, as its DLQ entry or failure callback tells it."""

    message_id: str
    url: str
    #: the last answer's HTTP status; None (or 0) when there was none (no connection, timeout)
    status: int | None
    #: the last answer's body, or what went wrong when there was no answer
    body: str = ""
    headers: Mapping[str, Sequence[str]] | None = None
    #: QStash's id of the DLQ entry, to delete it once the jobs are taken care of
    dlq_id: str | None = None
    #: the jobs the message carried (its body): found even if its id was never recorded
    job_ids: tuple[int, ...] = ()

    @property
    def reason(self) -> str:
        return diagnose(self.status, self.body, self.url, self.headers)


def diagnose(status: int | None, body: str, url: str, headers: Mapping[str, Sequence[str]] | None = None) -> str:
    """The cause of a failed delivery to `url` and what to check, from its last answer."""
    detail = _detail(body)
    said = f" ({detail})" if detail else ""
    where = f"the webhook at {url}"
    if not status:
        return _no_answer(where, detail)
    if status == 401:
        if "(sub)" in detail:
            return (
                f"{where} answered 401{said}: EMBEDQ_WEBHOOK_URL must be the exact public URL QStash calls, "
                "the same on the listener and on the webhook"
            )
        if "not configured" in detail:
            return (
                f"{where} answered 401{said}: set QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY on the webhook"
            )
        return (
            f"{where} answered 401{said}: do QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY on the webhook "
            "match the QStash account's signing keys?"
        )
    if status == 403:
        return f"{where} answered 403{said}: something in front of the webhook refuses QStash's requests"
    if status in (404, 405):
        return (
            f"{where} answered {status}{said}: EMBEDQ_WEBHOOK_URL does not point at embedq's POST /v1/jobs "
            "(`embedq serve` or `embedq up`, with the path /v1/jobs)"
        )
    if 300 <= status < 400:
        location = _header(headers, "location")
        to = f" to {location}" if location else ""
        return f"{where} redirects{to} ({status}): set EMBEDQ_WEBHOOK_URL to the final URL (QStash does not follow)"
    if status == 413:
        return (
            f"{where} refused the message as too large (413): raise EMBEDQ_MAX_BODY_BYTES on the webhook "
            "or lower EMBEDQ_JOBS_PER_MESSAGE"
        )
    if status == 400:
        return (
            f"{where} could not read the message (400{': ' + detail if detail else ''}): does a proxy change the body?"
        )
    if status == 429:
        return f"{where} answered 429{said}: a rate limit in front of it; lower EMBEDQ_QSTASH_PARALLELISM"
    if status == 489:
        return f"{where} gave up on the jobs (489{': ' + detail if detail else ''})"
    if status in (502, 504) and not _from_embedq(body):
        return f"{where}: the proxy in front of it got no answer ({status}{said}): is `embedq serve` running behind it?"
    if status >= 500:
        return (
            f"{where} answered {status} to every delivery{said}: it is up but cannot process the jobs; "
            "see its log (database, embedding provider)"
        )
    return f"{where} answered {status}{said}: QStash counts anything but 2xx as a failure"


def _no_answer(where: str, detail: str) -> str:
    lowered = detail.lower()
    said = f" ({detail})" if detail else ""
    if "timeout" in lowered or "timed out" in lowered:
        return (
            f"{where} did not answer in time{said}: is it overloaded? Lower EMBEDQ_JOBS_PER_MESSAGE "
            "or EMBEDQ_QSTASH_PARALLELISM"
        )
    if any(word in lowered for word in ("name or service", "nodename", "no such host", "getaddrinfo", "resolve")):
        return f"the host of {where.removeprefix('the webhook at ')} does not resolve{said}: check EMBEDQ_WEBHOOK_URL"
    if any(word in lowered for word in ("ssl", "tls", "certificate")):
        return f"TLS to {where.removeprefix('the webhook at ')} failed{said}: does it serve a valid certificate?"
    return (
        f"QStash could not reach {where}{said}: is `embedq serve` (or `embedq up`) running, and reachable "
        "from QStash at EMBEDQ_WEBHOOK_URL?"
    )


def _detail(body: str) -> str:
    """What the answer says: the `error` of a JSON body (embedq's and QStash's errors), or the text."""
    text = body.strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        text = parsed["error"]
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX_CHARS else text[: DETAIL_MAX_CHARS - 3] + "..."


def _from_embedq(body: str) -> bool:
    """embedq's webhook answers errors as JSON {"error": ...}; a proxy's 502 page does not."""
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


def _header(headers: Mapping[str, Sequence[str]] | None, name: str) -> str | None:
    for key, values in (headers or {}).items():
        if key.lower() == name and values:
            return values[0] if isinstance(values, list | tuple) else str(values)
    return None


def from_dead_letter(entry: Mapping[str, Any]) -> Undelivered:
    """A GET /v2/dlq entry (QStash's JSON)."""
    body = entry.get("responseBody")
    if body is None and entry.get("responseBodyBase64"):
        body = _decode(entry["responseBodyBase64"])
    sent = entry.get("body")
    if sent is None and isinstance(entry.get("bodyBase64"), str):
        sent = _decode(entry["bodyBase64"])
    return Undelivered(
        message_id=str(entry.get("messageId", "")),
        url=str(entry.get("url", "")),
        status=_status(entry.get("responseStatus")),
        body=str(body or ""),
        headers=entry.get("responseHeader") if isinstance(entry.get("responseHeader"), dict) else None,
        dlq_id=entry.get("dlqId"),
        job_ids=_job_ids(sent),
    )


def from_failure_callback(callback: Mapping[str, Any]) -> Undelivered:
    """A failure callback's JSON body: the last answer's body is base64."""
    message_id = callback.get("sourceMessageId")
    if not isinstance(message_id, str) or not message_id or len(message_id) > 200 or not message_id.isprintable():
        raise ValueError("sourceMessageId must be a short printable string")
    body = callback.get("body") or ""
    if not isinstance(body, str):
        raise ValueError("body must be the base64 text of the last answer")
    return Undelivered(
        message_id=message_id,
        url=str(callback.get("url") or ""),
        status=_status(callback.get("status")),
        body=_decode(body),
        headers=callback.get("header") if isinstance(callback.get("header"), dict) else None,
        dlq_id=callback.get("dlqId") if isinstance(callback.get("dlqId"), str) else None,
        job_ids=_job_ids(_decode(callback["sourceBody"]) if isinstance(callback.get("sourceBody"), str) else None),
    )


def _job_ids(sent: Any) -> tuple[int, ...]:
    """The job ids of a message's body; none if it is not one of embedq's."""
    if not isinstance(sent, str):
        return ()
    try:
        return parse_message(sent.encode()).job_ids
    except InvalidInput:
        return ()


def _status(value: Any) -> int | None:
    try:
        return int(value) or None
    except (TypeError, ValueError):
        return None


def _decode(encoded: str) -> str:
    try:
        return base64.b64decode(encoded).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
