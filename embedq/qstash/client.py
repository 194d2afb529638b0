"""The one QStash client a process uses: the official SDK's AsyncQStash, made to fail fast.

The SDK retries connection errors itself, about 30 s in all before giving up on an unreachable
QStash; `retry=False` lets embedq's circuit breaker decide at once. Its HTTP client waits up to
600 s for an answer, far longer than a claim for dispatch is leased: this wrapper gives it one
with CALL_TIMEOUT instead. The SDK offers no way to set or close its HTTP client; this class is
the one place that does both.

Every failed call raises a QStashCallError whose `problem` says what an operator can do about
it (QStash unreachable, rate limited, the token rejected): the listener falls back to local
processing and the schedules are upserted later, whatever the weather at start.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from embedq.errors import EmbedqError
from embedq.settings import Settings

#: the SDK reports a refused call as "Request failed with status: 401, body: ..."
_SDK_STATUS = re.compile(r"status: (\d{3})")
#: pages of 100 entries a DLQ read takes at most in one round
DEAD_LETTER_PAGES = 10
#: the longest a call to QStash may take: a /v2/batch of a thousand jobs is answered in well under
#: a second; past this QStash counts as unreachable (and a dispatch claim's lease must outlast it)
CALL_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class QStashCallError(EmbedqError):
    """A call to QStash failed; `problem` is one of UNREACHABLE, RATE_LIMITED, TOKEN_REJECTED, FAILED."""

    UNREACHABLE = "unreachable"
    RATE_LIMITED = "rate_limited"
    TOKEN_REJECTED = "token_rejected"
    FAILED = "failed"

    def __init__(self, message: str, problem: str = FAILED) -> None:
        super().__init__(message)
        self.problem = problem

    @property
    def hint(self) -> str:
        """What to check, for a log line."""
        return {
            self.UNREACHABLE: "QStash is unreachable or unavailable (QSTASH_URL, network, 5xx)",
            self.RATE_LIMITED: "QStash rate limits this account (429: daily quota or burst limit)",
            self.TOKEN_REJECTED: "QStash rejects QSTASH_TOKEN",
        }.get(self.problem, "QStash refused the call")


class PublishError(QStashCallError):
    """QStash did not take the messages (unreachable, 5xx, quota, bad token)."""


def problem_of(exc: BaseException) -> str:
    """Which QStashCallError problem an SDK or transport exception is."""
    # deferred, here and below: QStash's SDK costs ~50 ms of start-up, needed in QStash mode only
    from qstash.errors import DailyMessageLimitExceededError, RateLimitExceededError

    if isinstance(exc, httpx.HTTPError | OSError):
        return QStashCallError.UNREACHABLE
    if isinstance(exc, RateLimitExceededError | DailyMessageLimitExceededError):
        return QStashCallError.RATE_LIMITED
    found = _SDK_STATUS.search(str(exc))
    status = int(found.group(1)) if found else 0
    if status in (401, 403):
        return QStashCallError.TOKEN_REJECTED
    if status == 429:
        return QStashCallError.RATE_LIMITED
    if status >= 500:
        return QStashCallError.UNREACHABLE
    return QStashCallError.FAILED


class QStashClient:
    def __init__(self, token: str, base_url: str | None = None) -> None:
        from qstash import AsyncQStash  # deferred: QStash mode only

        self.sdk = AsyncQStash(token, base_url=base_url, retry=False)
        self.sdk.http._client = httpx.AsyncClient(timeout=CALL_TIMEOUT)

    @classmethod
    def from_settings(cls, settings: Settings) -> QStashClient:
        if not settings.qstash_token:
            raise EmbedqError("QStash needs QSTASH_TOKEN")
        return cls(settings.qstash_token, settings.qstash_url)

    async def publish_batch(self, requests: list[dict[str, Any]]) -> list[str]:
        """One /v2/batch call; the message id of each request, in order. PublishError otherwise."""
        from qstash.errors import QStashError  # deferred: QStash mode only

        try:
            responses = await self.sdk.message.batch_json(requests)  # type: ignore[arg-type]
        except (QStashError, httpx.HTTPError, OSError) as exc:
            raise PublishError(f"QStash did not accept {len(requests)} messages: {exc}", problem_of(exc)) from exc
        ids = [getattr(r, "message_id", None) for r in responses]
        if len(ids) != len(requests) or not all(isinstance(i, str) for i in ids):
            raise PublishError(f"QStash answered {len(responses)} results for {len(requests)} messages")
        return [str(i) for i in ids]

    async def dead_letters(self, url: str) -> list[dict[str, Any]]:
        """The DLQ entries of messages to `url` (QStash's JSON, up to DEAD_LETTER_PAGES pages)."""
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(DEAD_LETTER_PAGES):
            params = {"url": url, "count": "100", **({"cursor": cursor} if cursor else {})}
            page = await self._call("GET", "/v2/dlq", params=params)
            entries.extend(e for e in (page or {}).get("messages") or [] if isinstance(e, dict))
            cursor = (page or {}).get("cursor")
            if not cursor:
                break
        return entries

    async def delete_dead_letter(self, dlq_id: str) -> None:
        """Remove an entry embedq took care of; one already gone is fine."""
        try:
            await self._call("DELETE", f"/v2/dlq/{dlq_id}", parse=False)
        except QStashCallError as exc:
            if "status: 404" not in str(exc):
                raise

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None, parse: bool = True) -> Any:
        from qstash.errors import QStashError  # deferred: QStash mode only

        try:
            return await self.sdk.http.request(
                path=path,
                method=method,  # type: ignore[arg-type]
                params=params,
                parse_response=parse,
            )
        except (QStashError, httpx.HTTPError, OSError, ValueError) as exc:
            raise QStashCallError(f"QStash {method} {path} failed: {exc}", problem_of(exc)) from exc

    async def aclose(self) -> None:
        await self.sdk.http._client.aclose()

    async def __aenter__(self) -> QStashClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
