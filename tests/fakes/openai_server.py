"""An OpenAI-compatible embeddings server for tests: real HTTP, real request and error shapes.

    async with FakeOpenAIServer(dimensions=8) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="sk-test")

It runs on uvicorn inside the running event loop, on 127.0.0.1 and a free port. Vectors are
deterministic per text (`fake_vector`, from the text's SHAKE-256 digest), so a test can tell
whether the order was kept. Knobs are plain attributes and may be changed while the server
runs; counters record what the server saw.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.http_server import serve_app

MAX_INPUTS_PER_REQUEST = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
KNOWN_PARAMETERS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})


def fake_vector(text: str, dimensions: int) -> np.ndarray:
    """The unit float32 vector the fake answers for `text`."""
    words = np.frombuffer(hashlib.shake_256(text.encode()).digest(4 * dimensions), dtype="<u4")
    vector = words / 2.0**32 - 0.5
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def fake_token_count(text: str) -> int:
    """What the fake charges for a text: about 4 UTF-8 bytes per token, like cl100k on English."""
    return math.ceil(len(text.encode()) / 4)


class OpenAIErrorResponse(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": type, "param": param, "code": code}}
        self.headers = headers or {}


@dataclass
class InjectedFailures:
    """The next `remaining` requests fail with `status`, before validation, as a rate limiter would."""

    remaining: int = 0
    status: int = 429
    retry_after: float | None = None
    retry_after_ms: float | None = None


@dataclass
class SeenRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 0


@dataclass
class FakeOpenAIServer:
    #: output size when the request names no `dimensions` (the model's native size)
    dimensions: int = 8
    #: when set, requests must carry `Authorization: Bearer <api_key>`, else 401
    api_key: str | None = None
    #: model names the server knows (others get 404 model_not_found); None accepts any
    models: frozenset[str] | None = None
    #: seconds added to every request, before it is answered
    latency: float = 0.0
    #: up to this many more seconds, drawn per request (seeded), so answers overtake each other
    latency_jitter: float = 0.0
    #: fraction of requests answered with a random status from `failure_statuses`
    failure_rate: float = 0.0
    failure_statuses: tuple[int, ...] = (429, 500, 502, 503)
    #: Retry-After (seconds) sent with the random failures; None sends none
    failure_retry_after: float | None = 0.01
    seed: int = 0
    #: answer vectors of this length instead of the requested one
    wrong_dimensions: int | None = None
    #: answer this many fewer embeddings than inputs
    drop_embeddings: int = 0
    #: answer every embedding with this index instead of its own (a broken server)
    constant_index: int | None = None
    #: list the embeddings in reverse order (indexes stay right; clients must sort by index)
    reverse_order: bool = False
    #: (status, content type, body) answered verbatim after the failure knobs, instead of embeddings
    verbatim_response: tuple[int, str, str] | None = None
    #: any input containing this string is rejected with 400
    reject_marker: str | None = None
    max_inputs_per_request: int = MAX_INPUTS_PER_REQUEST
    max_input_tokens: int = MAX_INPUT_TOKENS
    max_request_tokens: int = MAX_REQUEST_TOKENS
    host: str = "127.0.0.1"

    failures: InjectedFailures = field(default_factory=InjectedFailures)
    #: every request that reached the embeddings route, in arrival order
    seen: list[SeenRequest] = field(default_factory=list)
    #: number of inputs of every request whose body could be read (failed ones too)
    batch_sizes: list[int] = field(default_factory=list)
    #: inputs answered with vectors
    total_inputs: int = 0
    in_flight: int = 0
    max_concurrent: int = 0

    _random: random.Random = field(init=False, repr=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _serving: contextlib.AsyncExitStack | None = field(default=None, init=False, repr=False)
    _url: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    @property
    def requests(self) -> int:
        return len(self.seen)

    @property
    def base_url(self) -> str:
        if self._url is None:
            raise RuntimeError("the server is not running")
        return f"{self._url}/v1"

    def fail_next(
        self,
        count: int,
        *,
        status: int = 429,
        retry_after: float | None = 0.05,
        retry_after_ms: float | None = None,
    ) -> None:
        """Answer the next `count` requests with `status` and the given Retry-After headers."""
        self.failures = InjectedFailures(count, status, retry_after, retry_after_ms)

    def reset_counters(self) -> None:
        self.seen.clear()
        self.batch_sizes.clear()
        self.total_inputs = 0
        self.max_concurrent = 0

    async def __aenter__(self) -> FakeOpenAIServer:
        app = Starlette(routes=[Route("/v1/embeddings", self._embeddings, methods=["POST"])])
        self._stopping = asyncio.Event()
        self._serving = contextlib.AsyncExitStack()
        self._url = await self._serving.enter_async_context(serve_app(app, self.host))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._serving is not None
        self._stopping.set()
        await self._serving.aclose()
        self._serving = self._url = None

    async def _embeddings(self, request: Request) -> Response:
        seen = SeenRequest(body={}, headers=dict(request.headers))
        self.seen.append(seen)
        self.in_flight += 1
        self.max_concurrent = max(self.max_concurrent, self.in_flight)
        try:
            response = await self._answer(request, seen)
        except OpenAIErrorResponse as error:
            response = JSONResponse(error.body, status_code=error.status, headers=error.headers)
        finally:
            self.in_flight -= 1
        response.headers["x-request-id"] = f"req_{uuid.uuid4().hex}"
        seen.status = response.status_code
        return response

    async def _answer(self, request: Request, seen: SeenRequest) -> Response:
        self._check_authorization(request.headers.get("authorization"))
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise OpenAIErrorResponse(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            ) from None
        if not isinstance(body, dict):
            raise OpenAIErrorResponse(400, "The request body must be a JSON object.")
        seen.body = body
        raw_input = body.get("input")
        self.batch_sizes.append(len(raw_input) if isinstance(raw_input, list) else 1)

        delay = self.latency + (self._random.uniform(0, self.latency_jitter) if self.latency_jitter else 0.0)
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self._inject_failure()
        if self.verbatim_response is not None:
            status, content_type, text = self.verbatim_response
            return Response(text, status_code=status, media_type=content_type)

        texts, model, dimensions, encoding_format = self._validate(body)
        tokens = [fake_token_count(text) for text in texts]
        self._check_tokens(tokens)
        data = [
            {"object": "embedding", "index": index, "embedding": self._encode(vector, encoding_format)}
            for index, vector in enumerate(self._vectors(texts, dimensions))
        ]
        if self.drop_embeddings:
            data = data[: max(0, len(data) - self.drop_embeddings)]
        if self.constant_index is not None:
            for item in data:
                item["index"] = self.constant_index
        if self.reverse_order:
            data.reverse()
        self.total_inputs += len(texts)
        usage = {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}
        return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})

    def _check_authorization(self, authorization: str | None) -> None:
        if self.api_key is None:
            return
        if not authorization or not authorization.startswith("Bearer "):
            raise OpenAIErrorResponse(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        given = authorization.removeprefix("Bearer ")
        if given != self.api_key:
            raise OpenAIErrorResponse(
                401,
                f"Incorrect API key provided: {given[:3]}***{given[-4:]}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _inject_failure(self) -> None:
        failures = self.failures
        if failures.remaining > 0:
            failures.remaining -= 1
            raise _failure(failures.status, failures.retry_after, failures.retry_after_ms)
        if self.failure_rate and self._random.random() < self.failure_rate:
            raise _failure(self._random.choice(self.failure_statuses), self.failure_retry_after, None)

    def _validate(self, body: dict[str, Any]) -> tuple[list[str], str, int, str]:
        unknown = sorted(set(body) - KNOWN_PARAMETERS)
        if unknown:
            raise OpenAIErrorResponse(400, f"Unrecognized request argument supplied: {unknown[0]}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise OpenAIErrorResponse(400, "You must provide a model parameter.", param="model")
        if self.models is not None and model not in self.models:
            raise OpenAIErrorResponse(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        texts = _texts(body.get("input"), self.max_inputs_per_request)
        for text in texts:
            if self.reject_marker is not None and self.reject_marker in text:
                raise OpenAIErrorResponse(400, "The input contains content that this server refuses.", param="input")
        dimensions = body.get("dimensions")
        if dimensions is None:
            dimensions = self.dimensions
        elif not model.startswith("text-embedding-3"):
            raise OpenAIErrorResponse(400, "This model does not support specifying dimensions.")
        elif type(dimensions) is not int or not 1 <= dimensions <= self.dimensions:
            raise OpenAIErrorResponse(
                400,
                f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {self.dimensions}.",
                param="dimensions",
            )
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise OpenAIErrorResponse(
                400,
                f"'{encoding_format}' is not one of ['float', 'base64'] - 'encoding_format'",
                param="encoding_format",
            )
        return texts, model, dimensions, encoding_format

    def _check_tokens(self, tokens: list[int]) -> None:
        longest = max(tokens)
        if longest > self.max_input_tokens:
            raise OpenAIErrorResponse(
                400,
                f"This model's maximum context length is {self.max_input_tokens} tokens, however you "
                f"requested {longest} tokens ({longest} in your prompt; 0 for the completion). "
                "Please reduce your prompt; or completion length.",
            )
        total = sum(tokens)
        if total > self.max_request_tokens:
            raise OpenAIErrorResponse(
                400,
                f"Requested {total} tokens, max {self.max_request_tokens} tokens per request",
                param="input",
                code="max_tokens_per_request",
            )

    def _vectors(self, texts: list[str], dimensions: int) -> Iterator[np.ndarray]:
        for text in texts:
            if self.wrong_dimensions is not None:
                yield fake_vector(text, self.wrong_dimensions)
            else:
                yield fake_vector(text, dimensions)

    @staticmethod
    def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
        if encoding_format == "base64":
            return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        return vector.tolist()


def _texts(raw_input: object, max_inputs: int) -> list[str]:
    invalid = OpenAIErrorResponse(
        400,
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        param="input",
    )
    if isinstance(raw_input, str):
        texts = [raw_input]
    elif isinstance(raw_input, list) and raw_input:
        if not all(isinstance(item, str) for item in raw_input):
            # token arrays are valid for the real API; this fake only embeds strings
            raise OpenAIErrorResponse(
                400, "This fake server only accepts strings as input, not token arrays.", param="input"
            )
        texts = raw_input
    else:
        raise invalid
    if len(texts) > max_inputs:
        raise OpenAIErrorResponse(
            400,
            f"'$.input' is invalid: at most {max_inputs} inputs are allowed per request, got {len(texts)}.",
            param="input",
        )
    if any(text == "" for text in texts):
        raise invalid
    return texts


def _failure(status: int, retry_after: float | None, retry_after_ms: float | None) -> OpenAIErrorResponse:
    headers = {}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    if retry_after_ms is not None:
        headers["retry-after-ms"] = f"{retry_after_ms:g}"
    if status == 429:
        return OpenAIErrorResponse(
            429,
            "Rate limit reached for requests. Please try again later. "
            "Visit https://platform.openai.com/account/rate-limits to learn more.",
            type="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    return OpenAIErrorResponse(
        status,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
        headers=headers,
    )
