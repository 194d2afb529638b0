"""The one QStash client a process uses: the official SDK's AsyncQStash, made to fail fast.

The SDK retries connection errors itself, about 30 s in all before giving up on an unreachable
QStash; `retry=False` lets embedq's circuit breaker decide at once. The SDK offers no way to
close its HTTP client; `aclose()` here is the one place that does it.
"""

from __future__ import annotations

from typing import Any

import httpx

from embedq.errors import EmbedqError
from embedq.settings import Settings


class PublishError(EmbedqError):
    """QStash did not take the messages (unreachable, 5xx, quota, bad token)."""


class QStashClient:
    def __init__(self, token: str, base_url: str | None = None) -> None:
        from qstash import AsyncQStash

        self.sdk = AsyncQStash(token, base_url=base_url, retry=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> QStashClient:
        if not settings.qstash_token:
            raise EmbedqError("QStash needs QSTASH_TOKEN")
        return cls(settings.qstash_token, settings.qstash_url)

    async def publish_batch(self, requests: list[dict[str, Any]]) -> list[str]:
        """One /v2/batch call; the message id of each request, in order. PublishError otherwise."""
        from qstash.errors import QStashError

        try:
            responses = await self.sdk.message.batch_json(requests)  # type: ignore[arg-type]
        except (QStashError, httpx.HTTPError, OSError) as exc:
            raise PublishError(f"QStash did not accept {len(requests)} messages: {exc}") from exc
        ids = [getattr(r, "message_id", None) for r in responses]
        if len(ids) != len(requests) or not all(isinstance(i, str) for i in ids):
            raise PublishError(f"QStash answered {len(responses)} results for {len(requests)} messages")
        return [str(i) for i in ids]

    async def aclose(self) -> None:
        await self.sdk.http._client.aclose()

    async def __aenter__(self) -> QStashClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
