"""Fakes for tests and benchmarks (procrastinate's testing.py in spirit).

`HashEmbedder` costs nothing: deterministic unit vectors from a hash of the text, so the
database path can be measured and tested without a model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from embedq.errors import PermanentError, RetryableError


class HashEmbedder:
    provider = "test"
    max_input_tokens = 10_000

    def __init__(self, model: str = "hash-test", dimensions: int = 16) -> None:
        self.model = model
        self.dimensions = dimensions
        self.calls: list[list[str]] = []
        self.fail_next: list[Exception] = []
        self.poison_marker: str | None = None

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def vector(self, text: str) -> np.ndarray:
        digest = hashlib.shake_256(text.encode("utf-8", "replace")).digest(2 * self.dimensions)
        vec = np.frombuffer(digest, dtype="<u2").astype(np.float32) - 32767.5
        return vec / np.linalg.norm(vec)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if self.fail_next:
            raise self.fail_next.pop(0)
        if self.poison_marker and any(self.poison_marker in t for t in texts):
            raise PermanentError(f"input contains {self.poison_marker!r}")
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts])

    async def embed_query(self, text: str) -> np.ndarray:
        return self.vector(text)


class CountingEmbedder:
    """Wraps a real embedder and counts provider calls and texts."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model = inner.model
        self.provider = inner.provider
        self.dimensions = inner.dimensions
        self.max_input_tokens = inner.max_input_tokens
        self.document_calls = 0
        self.documents: list[str] = []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.document_calls += 1
        self.documents.extend(texts)
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> np.ndarray:
        return await self.inner.embed_query(text)


__all__ = ["CountingEmbedder", "HashEmbedder", "PermanentError", "RetryableError"]
