"""The `openai` provider: OpenAI, or any server that speaks its embeddings API.

Ollama, vLLM, TEI and LM Studio all answer `POST {OPENAI_BASE_URL}/embeddings`; a keyless
server gets a placeholder bearer token. The SDK retries 408, 409, 429 and 5xx itself
(`max_retries`), waiting as the server's `retry-after-ms` or `Retry-After` header says, or
with exponential backoff (0.5 s doubling to 8 s) when there is none; it does not retry at all
when the server asks for more than two minutes. Whatever it gives up on is translated here,
once, into RetryableError (carrying the server's wait) or PermanentError. A failed batch is
retried as the same batch, so batching survives retries.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import json
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import httpx
import numpy as np
import openai

from embedq.batching import batch_ranges
from embedq.errors import ConfigError, PermanentError, RetryableError
from embedq.jobs import FailureCause
from embedq.providers.adaptive import AdaptiveLimit, AdaptiveSemaphore
from embedq.settings import Settings

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
#: sent as the bearer token to servers that need none (the SDK refuses to run without a key)
KEYLESS_API_KEY = "embedq-keyless"
#: OpenAI's limit on inputs per request
MAX_INPUTS_PER_REQUEST = 2048
#: tokens per request embedq aims for; OpenAI refuses more than 300_000 summed over the inputs,
#: and the estimate below is an estimate
MAX_TOKENS_PER_REQUEST = 250_000
#: per input, for OpenAI's embedding models
OPENAI_MAX_INPUT_TOKENS = 8191
#: per input, for models embedq does not know (BERT-sized models served by TEI, vLLM, Ollama)
UNKNOWN_MODEL_MAX_INPUT_TOKENS = 512
OPENAI_MODELS = frozenset({"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"})


def estimate_tokens(text: str) -> int:
    """A deliberately high estimate of the tokens `text` costs, without a tokenizer.

    tiktoken fetches its BPE tables over the network on first use, which an offline worker
    cannot do. English averages about 4.5 UTF-8 bytes per cl100k token and code about 3.5,
    so one token per 3 bytes overestimates both; non-ASCII bytes count double because rare
    CJK characters and emoji can cost a token or more each. Always >= 1 for a non-empty text.
    """
    if not text:
        return 0
    size = len(text.encode("utf-8"))
    if text.isascii():
        return math.ceil(size / 3)
    non_ascii_bytes = size - len(text.encode("ascii", "ignore"))
    return math.ceil((size + non_ascii_bytes) / 3)


def supports_dimensions(model: str) -> bool:
    """Only text-embedding-3 models accept the `dimensions` request parameter."""
    return model.startswith("text-embedding-3")


class OpenAIEmbedder:
    provider = "openai"

    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        api_key: str | None = None,
        base_url: str | None = None,
        concurrency: int = 16,
        max_retries: int = 4,
        timeout: float | None = 60.0,
        max_inputs_per_request: int = MAX_INPUTS_PER_REQUEST,
        max_tokens_per_request: int = MAX_TOKENS_PER_REQUEST,
        max_input_tokens: int = OPENAI_MAX_INPUT_TOKENS,
        send_dimensions: bool | None = None,
        encoding_format: Literal["base64", "float"] = "base64",
    ):
        """`send_dimensions`: None sends `dimensions` for text-embedding-3 models only.

        `encoding_format`: "base64" (what the SDK asks for by default; a quarter of the bytes)
        or "float" for a server that rejects base64. Either kind of answer is accepted.
        """
        if min(dimensions, concurrency, max_input_tokens, max_tokens_per_request) < 1 or max_retries < 0:
            raise ValueError(
                "dimensions, concurrency, max_input_tokens and max_tokens_per_request must be positive, "
                "max_retries must not be negative"
            )
        if not 1 <= max_inputs_per_request <= MAX_INPUTS_PER_REQUEST:
            raise ValueError(f"max_inputs_per_request must be between 1 and {MAX_INPUTS_PER_REQUEST}")
        if encoding_format not in ("base64", "float"):
            raise ValueError("encoding_format must be 'base64' or 'float'")
        self.model = model
        self.dimensions = dimensions
        self.max_input_tokens = max_input_tokens
        self.max_inputs_per_request = max_inputs_per_request
        self.max_tokens_per_request = max_tokens_per_request
        self.concurrency = concurrency
        self.send_dimensions = supports_dimensions(model) if send_dimensions is None else send_dimensions
        self.encoding_format = encoding_format
        # Requests in flight start at a quarter of `concurrency` and adapt: halved on a 429,
        # one fewer when answers slow down, one more while they stay fast.
        self.in_flight = AdaptiveLimit(limit=max(1, concurrency // 4), maximum=concurrency)
        self._semaphore = AdaptiveSemaphore(self.in_flight)
        self._client = openai.AsyncOpenAI(
            api_key=api_key or KEYLESS_API_KEY,
            base_url=base_url or OPENAI_BASE_URL,
            max_retries=max_retries,
            timeout=timeout,
            # every answer is seen here, the 429s the SDK retries by itself included
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"response": [self._observe_throttling]}),
        )

    async def _observe_throttling(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self.in_flight.on_throttled()
            logger.info(
                "provider rate limit: fewer requests in flight",
                extra={"action": "embed", "model": self.model, "in_flight_limit": self.in_flight.limit},
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        """EMBEDQ_OPENAI_TIMEOUT=0 means no timeout."""
        known_model = settings.model in OPENAI_MODELS
        try:
            return cls(
                model=settings.model,
                dimensions=settings.dimensions,
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url,
                concurrency=settings.openai_concurrency,
                max_retries=settings.openai_max_retries,
                timeout=settings.openai_timeout or None,
                max_inputs_per_request=settings.openai_batch_size,
                max_input_tokens=OPENAI_MAX_INPUT_TOKENS if known_model else UNKNOWN_MODEL_MAX_INPUT_TOKENS,
            )
        except ValueError as exc:
            raise ConfigError(f"EMBEDQ_OPENAI_* / EMBEDQ_DIMENSIONS: {exc}") from None

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self.model!r}, dimensions={self.dimensions}, base_url='{self.base_url}')"

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        token_counts = [self.count_tokens(text) for text in texts]
        ranges = batch_ranges(token_counts, self.max_inputs_per_request, self.max_tokens_per_request)
        tasks = [asyncio.create_task(self._embed_batch(texts[batch.start : batch.stop])) for batch in ranges]
        try:
            batches = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return np.concatenate(batches)

    async def embed_query(self, text: str) -> np.ndarray:
        return (await self.embed_documents([text]))[0]

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> OpenAIEmbedder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _embed_batch(self, texts: list[str]) -> np.ndarray:
        extra: dict[str, Any] = {"dimensions": self.dimensions} if self.send_dimensions else {}
        async with self._semaphore:
            started = time.perf_counter()
            try:
                # The raw answer, read here: the SDK's models cost more than everything else the
                # listener does per row (a pydantic object per vector, strings validated twice).
                raw = await self._client.embeddings.with_raw_response.create(
                    input=texts, model=self.model, encoding_format=self.encoding_format, **extra
                )
                response = json.loads(raw.http_response.content)
            except openai.OpenAIError as exc:
                raise self._translate(exc) from exc
            except ValueError as exc:  # a 200 whose JSON body does not parse
                raise PermanentError(f"{self._where}: unreadable response: {exc}") from exc
            limit = self.in_flight.limit
            self.in_flight.on_answer(time.perf_counter() - started)
        if self.in_flight.limit > limit:
            await self._semaphore.changed()
        return self._vectors(response, len(texts))

    def _vectors(self, response: Any, expected: int) -> np.ndarray:
        """The (expected, dimensions) float32 matrix, in input order, or PermanentError."""
        data = response.get("data") if isinstance(response, dict) else None
        if not isinstance(data, list) or len(data) != expected:
            count = len(data) if isinstance(data, list) else "no"
            raise PermanentError(f"{self._where}: {expected} inputs were sent, {count} embeddings came back")
        matrix = np.empty((expected, self.dimensions), dtype=np.float32)
        filled = np.zeros(expected, dtype=bool)
        for item in data:
            index = item.get("index") if isinstance(item, dict) else None
            if type(index) is not int or not 0 <= index < expected or filled[index]:
                raise PermanentError(f"{self._where}: embedding index {index!r} does not match {expected} inputs")
            vector = _decode(item.get("embedding"))
            if vector is None:
                raise PermanentError(f"{self._where}: embedding {index} is neither base64 nor a list of numbers")
            if vector.shape != (self.dimensions,):
                raise PermanentError(
                    f"{self._where}: the server returned {vector.size} dimensions, "
                    f"{self.dimensions} are configured (EMBEDQ_DIMENSIONS)"
                )
            if not np.isfinite(vector).all():
                raise PermanentError(f"{self._where}: embedding {index} contains NaN or infinity")
            matrix[index] = vector
            filled[index] = True
        return matrix

    @property
    def _where(self) -> str:
        return f"{self.model} at {self.base_url}"

    def _translate(self, exc: openai.OpenAIError) -> RetryableError | PermanentError:
        where = self._where
        if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
            error: RetryableError | PermanentError = RetryableError(f"{where}: {exc.message}")
        elif isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = exc.body.get("message") if isinstance(exc.body, dict) else None
            message = f"{where}: HTTP {status}: {detail or exc.message}"
            if status in (408, 409, 429) or status >= 500:
                error = RetryableError(
                    message,
                    retry_after=retry_after_seconds(exc.response.headers),
                    cause=FailureCause.RATE_LIMIT if status == 429 else None,
                )
            else:
                error = PermanentError(message, cause=FailureCause.BAD_INPUT if status in (400, 413, 422) else None)
        else:
            # a 200 with an unreadable body (APIResponseValidationError) or a client misconfiguration
            error = PermanentError(f"{where}: {exc}")
        logger.warning(
            "embedding request failed",
            extra={
                "action": "embed",
                "model": self.model,
                "retryable": error.retryable,
                "retry_after": error.retry_after,
                "status_code": getattr(exc, "status_code", None),
                "error": str(error),
            },
        )
        return error


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds the server asked to wait: `retry-after-ms`, else `Retry-After` (seconds or HTTP date)."""
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = headers.get("retry-after")
    if value:
        try:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _decode(embedding: object) -> np.ndarray | None:
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) % 4:
            return None
        return np.frombuffer(raw, dtype="<f4")
    if isinstance(embedding, list):
        try:
            return np.asarray(embedding, dtype=np.float32)
        except (TypeError, ValueError):
            return None
    return None
