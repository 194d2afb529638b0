"""OpenAIEmbedder through the real SDK and real HTTP, against the fake OpenAI server."""

import asyncio
import base64
import email.utils
import json
import socket
import time

import numpy as np
import pytest

from embedq.errors import ConfigError, PermanentError, RetryableError
from embedq.providers.base import Embedder
from embedq.providers.openai import (
    KEYLESS_API_KEY,
    OPENAI_MAX_INPUT_TOKENS,
    UNKNOWN_MODEL_MAX_INPUT_TOKENS,
    OpenAIEmbedder,
    estimate_tokens,
    retry_after_seconds,
)
from embedq.settings import Settings
from tests.fakes.openai_server import FakeOpenAIServer, fake_token_count, fake_vector

MODEL = "text-embedding-3-small"
DIMS = 8
API_KEY = "sk-test-embedq"


def expected_vectors(texts: list[str], dimensions: int = DIMS) -> np.ndarray:
    return np.stack([fake_vector(text, dimensions) for text in texts])


def texts_of(count: int, prefix: str = "text") -> list[str]:
    return [f"{prefix} {i}" for i in range(count)]


@pytest.fixture
async def server():
    async with FakeOpenAIServer(dimensions=DIMS, api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def make_embedder(server):
    made: list[OpenAIEmbedder] = []

    def make(**overrides) -> OpenAIEmbedder:
        arguments = dict(model=MODEL, dimensions=DIMS, api_key=API_KEY, base_url=server.base_url)
        embedder = OpenAIEmbedder(**(arguments | dict(max_retries=0, concurrency=1) | overrides))
        made.append(embedder)
        return embedder

    yield make
    for embedder in made:
        await embedder.aclose()


async def test_returns_float32_vectors_in_input_order(server, make_embedder):
    embedder = make_embedder()
    texts = [*texts_of(5), "naïve café 東京 🙂"]

    vectors = await embedder.embed_documents(texts)

    assert vectors.dtype == np.float32
    assert vectors.shape == (6, DIMS)
    np.testing.assert_array_equal(vectors, expected_vectors(texts))
    assert server.seen[0].body["encoding_format"] == "base64"
    assert server.seen[0].headers["authorization"] == f"Bearer {API_KEY}"


async def test_float_encoding_is_accepted(server, make_embedder):
    embedder = make_embedder(encoding_format="float")

    vectors = await embedder.embed_documents(texts_of(3))

    np.testing.assert_array_equal(vectors, expected_vectors(texts_of(3)))
    assert server.seen[0].body["encoding_format"] == "float"


async def test_embed_query_embeds_one_text_without_prefix(server, make_embedder):
    embedder = make_embedder()

    vector = await embedder.embed_query("how do joins work")

    assert vector.shape == (DIMS,) and vector.dtype == np.float32
    np.testing.assert_array_equal(vector, fake_vector("how do joins work", DIMS))
    assert server.seen[0].body["input"] == ["how do joins work"]


async def test_no_texts_no_request(server, make_embedder):
    vectors = await make_embedder().embed_documents([])

    assert vectors.shape == (0, DIMS) and vectors.dtype == np.float32
    assert server.requests == 0


async def test_satisfies_the_embedder_protocol(make_embedder):
    embedder = make_embedder()

    assert isinstance(embedder, Embedder)
    assert embedder.provider == "openai"
    assert embedder.model == MODEL
    assert embedder.max_input_tokens == OPENAI_MAX_INPUT_TOKENS


async def test_batches_bounded_by_count(server, make_embedder):
    embedder = make_embedder(max_inputs_per_request=10)
    texts = texts_of(25)

    vectors = await embedder.embed_documents(texts)

    assert server.batch_sizes == [10, 10, 5]
    np.testing.assert_array_equal(vectors, expected_vectors(texts))


async def test_default_batches_stay_within_openai_input_limit(server, make_embedder):
    embedder = make_embedder(concurrency=4)
    texts = texts_of(5000)

    vectors = await embedder.embed_documents(texts)

    assert sorted(server.batch_sizes) == [904, 2048, 2048]
    np.testing.assert_array_equal(vectors, expected_vectors(texts))


async def test_batches_bounded_by_token_budget(server, make_embedder):
    embedder = make_embedder(max_tokens_per_request=35)
    texts = [f"{i:02d}" + "x" * 28 for i in range(10)]
    assert {embedder.count_tokens(text) for text in texts} == {10}

    vectors = await embedder.embed_documents(texts)

    assert server.batch_sizes == [3, 3, 3, 1]
    np.testing.assert_array_equal(vectors, expected_vectors(texts))


async def test_order_kept_when_batches_finish_out_of_order(server, make_embedder):
    server.latency, server.latency_jitter = 0.01, 0.05
    embedder = make_embedder(max_inputs_per_request=5, concurrency=4)
    texts = texts_of(60)

    vectors = await embedder.embed_documents(texts)

    assert len(server.batch_sizes) == 12
    np.testing.assert_array_equal(vectors, expected_vectors(texts))


async def test_embeddings_listed_out_of_order_are_placed_by_index(server, make_embedder):
    server.reverse_order = True
    texts = texts_of(7)

    vectors = await make_embedder().embed_documents(texts)

    np.testing.assert_array_equal(vectors, expected_vectors(texts))


async def test_requests_overlap_up_to_the_concurrency_limit(server, make_embedder):
    server.latency = 0.05
    embedder = make_embedder(max_inputs_per_request=2, concurrency=3)

    await embedder.embed_documents(texts_of(20))

    assert server.requests == 10
    assert server.max_concurrent == 3


async def test_requests_in_flight_grow_while_answers_are_fast_and_halve_on_a_rate_limit(server, make_embedder):
    server.latency = 0.02
    embedder = make_embedder(max_inputs_per_request=1, concurrency=8, max_retries=3)
    await embedder.embed_documents(texts_of(60))
    assert server.max_concurrent == 8  # started at 2, grew while the server kept up

    server.reset_counters()
    server.fail_next(4, status=429, retry_after=0.01)
    await embedder.embed_documents(texts_of(8))
    assert embedder.in_flight.limit <= 2  # four 429s: 8 -> 4 -> 2 -> 1 -> 1, then growing again
    server.reset_counters()
    await embedder.embed_documents(texts_of(8))
    assert server.max_concurrent < 8


async def test_rate_limit_with_retry_after_is_retried_with_the_same_batch(server, make_embedder):
    server.fail_next(1, status=429, retry_after=0.05)
    embedder = make_embedder(max_inputs_per_request=3, max_retries=2)
    texts = texts_of(6)

    started = time.monotonic()
    vectors = await embedder.embed_documents(texts)
    elapsed = time.monotonic() - started

    np.testing.assert_array_equal(vectors, expected_vectors(texts))
    assert [seen.status for seen in server.seen] == [429, 200, 200]
    assert server.batch_sizes == [3, 3, 3]
    assert server.seen[0].body["input"] == server.seen[1].body["input"] == texts[:3]
    assert server.seen[1].headers["x-stainless-retry-count"] == "1"
    assert server.total_inputs == 6
    assert 0.05 <= elapsed < 1.0


async def test_retry_after_ms_wins_over_retry_after(server, make_embedder):
    server.fail_next(1, status=503, retry_after=5, retry_after_ms=30)
    embedder = make_embedder(max_retries=1)

    started = time.monotonic()
    await embedder.embed_documents(texts_of(2))

    assert 0.03 <= time.monotonic() - started < 2
    assert [seen.status for seen in server.seen] == [503, 200]


async def test_persistent_server_errors_become_retryable_after_sdk_retries(server, make_embedder):
    server.fail_next(100, status=503, retry_after=0.01)
    embedder = make_embedder(max_retries=2)

    with pytest.raises(RetryableError) as caught:
        await embedder.embed_documents(texts_of(4))

    assert server.requests == 3
    assert caught.value.retry_after == pytest.approx(0.01)
    assert "503" in str(caught.value)


async def test_persistent_rate_limit_becomes_retryable_with_retry_after(server, make_embedder):
    server.fail_next(100, status=429, retry_after=0.02)
    embedder = make_embedder(max_retries=1)

    with pytest.raises(RetryableError) as caught:
        await embedder.embed_documents(texts_of(4))

    assert server.requests == 2
    assert caught.value.retry_after == pytest.approx(0.02)


async def test_retry_after_beyond_two_minutes_is_not_waited_for_by_the_sdk(server, make_embedder):
    server.fail_next(1, status=429, retry_after=300)
    embedder = make_embedder(max_retries=4)

    with pytest.raises(RetryableError) as caught:
        await embedder.embed_documents(texts_of(2))

    assert server.requests == 1
    assert caught.value.retry_after == 300


async def test_random_failures_are_ridden_out_by_sdk_retries(server, make_embedder):
    server.failure_rate, server.failure_retry_after = 0.3, 0.005
    embedder = make_embedder(max_inputs_per_request=4, max_retries=6)
    texts = texts_of(80)

    vectors = await embedder.embed_documents(texts)

    np.testing.assert_array_equal(vectors, expected_vectors(texts))
    assert any(seen.status != 200 for seen in server.seen)
    assert server.total_inputs == 80
    assert set(server.batch_sizes) == {4}


async def test_wrong_api_key_is_permanent_and_not_retried(server, make_embedder):
    embedder = make_embedder(api_key="sk-wrong-key", max_retries=3)

    with pytest.raises(PermanentError) as caught:
        await embedder.embed_documents(texts_of(2))

    assert server.requests == 1
    assert "401" in str(caught.value) and "Incorrect API key" in str(caught.value)


async def test_bad_request_is_permanent_and_not_retried(server, make_embedder):
    server.reject_marker = "<<poison>>"
    embedder = make_embedder(max_retries=3)

    with pytest.raises(PermanentError) as caught:
        await embedder.embed_documents(["fine", "also <<poison>> here"])

    assert server.requests == 1
    assert "400" in str(caught.value)


async def test_one_bad_batch_fails_the_call_and_cancels_the_rest(server, make_embedder):
    server.reject_marker = "<<poison>>"
    server.latency = 0.05
    embedder = make_embedder(max_inputs_per_request=1, concurrency=2)
    texts = ["<<poison>>", *texts_of(9)]

    with pytest.raises(PermanentError):
        await embedder.embed_documents(texts)

    await asyncio.sleep(0.1)
    assert server.requests < 10
    assert server.in_flight == 0


async def test_unknown_model_is_permanent(make_embedder):
    async with FakeOpenAIServer(dimensions=DIMS, models=frozenset({MODEL})) as picky:
        embedder = make_embedder(model="no-such-model", base_url=picky.base_url)

        with pytest.raises(PermanentError) as caught:
            await embedder.embed_documents(texts_of(1))
        await embedder.aclose()

    assert "404" in str(caught.value)


async def test_wrong_dimensions_are_permanent(server, make_embedder):
    server.wrong_dimensions = DIMS * 2

    with pytest.raises(PermanentError) as caught:
        await make_embedder().embed_documents(texts_of(3))

    assert "16 dimensions" in str(caught.value)


async def test_missing_embeddings_are_permanent(server, make_embedder):
    server.drop_embeddings = 1

    with pytest.raises(PermanentError) as caught:
        await make_embedder().embed_documents(texts_of(3))

    assert "3 inputs were sent, 2 embeddings came back" in str(caught.value)


async def test_duplicate_indexes_are_permanent(server, make_embedder):
    server.constant_index = 0

    with pytest.raises(PermanentError):
        await make_embedder().embed_documents(texts_of(3))


async def test_dimensions_sent_to_text_embedding_3_models(server, make_embedder):
    server.dimensions = 32
    embedder = make_embedder(model="text-embedding-3-large", dimensions=DIMS)

    vectors = await embedder.embed_documents(texts_of(2))

    assert server.seen[0].body["dimensions"] == DIMS
    np.testing.assert_array_equal(vectors, expected_vectors(texts_of(2)))


@pytest.mark.parametrize("model", ["text-embedding-ada-002", "nomic-embed-text", "BAAI/bge-small-en-v1.5"])
async def test_dimensions_not_sent_to_other_models(server, make_embedder, model):
    embedder = make_embedder(model=model)

    vectors = await embedder.embed_documents(texts_of(2))

    assert "dimensions" not in server.seen[0].body
    assert vectors.shape == (2, DIMS)


async def test_keyless_server_gets_a_placeholder_key(make_embedder):
    async with FakeOpenAIServer(dimensions=DIMS) as keyless:
        embedder = make_embedder(api_key=None, base_url=keyless.base_url, model="nomic-embed-text")

        vectors = await embedder.embed_documents(texts_of(2))
        await embedder.aclose()

    assert vectors.shape == (2, DIMS)
    assert keyless.seen[0].headers["authorization"] == f"Bearer {KEYLESS_API_KEY}"


async def test_unreachable_server_is_retryable(make_embedder):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedder = make_embedder(base_url=f"http://127.0.0.1:{port}/v1")

    with pytest.raises(RetryableError) as caught:
        await embedder.embed_documents(texts_of(1))

    assert caught.value.retry_after is None


async def test_timeout_is_retryable(server, make_embedder):
    server.latency = 0.5
    embedder = make_embedder(timeout=0.05)

    with pytest.raises(RetryableError) as caught:
        await embedder.embed_documents(texts_of(1))

    assert "timed out" in str(caught.value)


async def test_from_settings(server):
    settings = Settings.from_env(
        {
            "EMBEDQ_PROVIDER": "openai",
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": server.base_url,
            "EMBEDQ_MODEL": MODEL,
            "EMBEDQ_DIMENSIONS": str(DIMS),
            "EMBEDQ_OPENAI_CONCURRENCY": "2",
            "EMBEDQ_OPENAI_MAX_RETRIES": "1",
        }
    )
    embedder = OpenAIEmbedder.from_settings(settings)
    try:
        server.fail_next(1, status=429, retry_after=0.01)
        vectors = await embedder.embed_documents(texts_of(3))
    finally:
        await embedder.aclose()

    np.testing.assert_array_equal(vectors, expected_vectors(texts_of(3)))
    assert (embedder.model, embedder.dimensions, embedder.concurrency) == (MODEL, DIMS, 2)
    assert embedder.max_input_tokens == OPENAI_MAX_INPUT_TOKENS
    assert server.requests == 2


async def test_from_settings_for_a_model_embedq_does_not_know(server):
    settings = Settings.from_env(
        {
            "EMBEDQ_PROVIDER": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "EMBEDQ_MODEL": "nomic-embed-text",
            "EMBEDQ_DIMENSIONS": "768",
        }
    )
    embedder = OpenAIEmbedder.from_settings(settings)
    await embedder.aclose()

    assert embedder.max_input_tokens == UNKNOWN_MODEL_MAX_INPUT_TOKENS
    assert embedder.send_dimensions is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("a", 1),
        ("abc", 1),
        ("abcd", 2),
        ("x" * 300, 100),
        ("é", 2),  # 2 bytes, both non-ASCII: (2 + 2) / 3
        ("東京", 4),  # 6 bytes, all non-ASCII: (6 + 6) / 3
    ],
)
def test_token_estimate(text, expected):
    assert estimate_tokens(text) == expected


@pytest.mark.parametrize(
    "text",
    ["plain English prose, the kind most rows hold.", "def f(x):\n    return x ** 2\n", "naïve 東京 🙂 Привет"],
)
def test_token_estimate_is_not_below_what_the_fake_server_charges(text):
    assert estimate_tokens(text) >= fake_token_count(text)


def embeddings_json(*items: object) -> str:
    usage = {"prompt_tokens": 1, "total_tokens": 1}
    return json.dumps({"object": "list", "model": MODEL, "usage": usage, "data": list(items)})


def embedding(index: object, vector: object) -> dict:
    return {"object": "embedding", "index": index, "embedding": vector}


NAN_BASE64 = base64.b64encode(np.full(DIMS, np.nan, dtype="<f4").tobytes()).decode()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        pytest.param("application/json", '{"object": "list", "data": [{"index": 0, "embed', id="truncated json"),
        pytest.param("text/html", "<html><body>Welcome to nginx!</body></html>", id="html"),
        pytest.param("application/json", "[]", id="json list"),
        pytest.param("application/json", embeddings_json("nope"), id="non-object item"),
        pytest.param("application/json", embeddings_json(embedding(0, "%%%")), id="bad base64"),
        pytest.param("application/json", embeddings_json(embedding(0, [1, "x"])), id="non-numbers"),
        pytest.param("application/json", embeddings_json(embedding("0", [0.5] * DIMS)), id="string index"),
        pytest.param("application/json", embeddings_json(embedding(0, NAN_BASE64)), id="NaN"),
    ],
)
async def test_unreadable_answers_are_permanent(server, make_embedder, content_type, body):
    server.verbatim_response = (200, content_type, body)

    with pytest.raises(PermanentError):
        await make_embedder().embed_documents(["one"])


async def test_a_well_formed_verbatim_answer_is_accepted(server, make_embedder):
    server.verbatim_response = (200, "application/json", embeddings_json(embedding(0, [0.5] * DIMS)))

    vectors = await make_embedder().embed_documents(["one"])

    np.testing.assert_array_equal(vectors, np.full((1, DIMS), 0.5, dtype=np.float32))


async def test_a_gateway_error_page_is_retryable(server, make_embedder):
    server.verbatim_response = (502, "text/html", "<html><body>502 Bad Gateway</body></html>")

    with pytest.raises(RetryableError):
        await make_embedder().embed_documents(["one"])


def test_from_settings_rejects_a_negative_retry_count():
    settings = Settings.from_env(
        {"EMBEDQ_PROVIDER": "openai", "OPENAI_API_KEY": API_KEY, "EMBEDQ_OPENAI_MAX_RETRIES": "-1"}
    )

    with pytest.raises(ConfigError):
        OpenAIEmbedder.from_settings(settings)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "tomorrow"}, None),
    ],
)
def test_retry_after_seconds(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_retry_after_seconds_reads_http_dates():
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)

    assert 55 <= retry_after_seconds({"retry-after": in_a_minute}) <= 61
