"""The Embedder protocol: the only way embedq talks to a model.

Two I/O methods, one per direction: e5-style models embed documents and queries with
different prefixes, and every provider gets the chance to do the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    #: model name stored next to every vector; vectors of different models are never compared
    model: str
    #: "local" or "openai"
    provider: str
    dimensions: int
    #: the most tokens one input may have; longer texts are chunked before they get here
    max_input_tokens: int

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs, without special tokens or prefixes. Cheap and pure."""
        ...

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for documents, shape (len(texts), dimensions), float32.

        Raises embedq.errors.RetryableError or PermanentError, nothing else.
        """
        ...

    async def embed_query(self, text: str) -> np.ndarray:
        """The vector for a search query, shape (dimensions,), float32."""
        ...
