"""The indexer: builds a model's HNSW index once the model has enough vectors.

Below EMBEDQ_HNSW_MIN_ROWS vectors, search scans them exactly (fast at that size, and exact).
Maintaining HNSW row by row costs about 1-2 ms per vector, so a first load without the index
and one bulk build afterwards is several times cheaper (pgvector's own advice; pgai's
vectorizer does the same with its `min_rows`). The build is CONCURRENTLY: writers and
searches go on meanwhile. An invalid index left by a failed build is dropped and rebuilt.
"""

from __future__ import annotations

import logging
import time

import asyncpg

from embedq.periodic import PeriodicService
from embedq.settings import Settings
from embedq.store import JobStore, Store

logger = logging.getLogger(__name__)


async def build_index_when_due(store: Store, model: str, min_rows: int) -> str:
    """Build the model's index if it has at least min_rows vectors. Returns the index state."""
    state = await store.index_state(model)
    if state == "ready" or not await store.has_vectors_at_least(model, min_rows):
        return state
    started = time.perf_counter()
    logger.info("building the HNSW index", extra={"action": "index_build", "model": model})
    built = await store.build_index(model)
    if built is None:
        return state  # another listener is building it
    logger.info(
        "HNSW index ready",
        extra={
            "action": "index_build",
            "model": model,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return built


async def ensure_index(pool: asyncpg.Pool, model: str, min_rows: int) -> str:
    """build_index_when_due for a caller holding a pool."""
    return await build_index_when_due(JobStore(pool), model, min_rows)


class Indexer(PeriodicService):
    """Checks every round until the index is ready, then ends."""

    action = "index_build"
    default_interval = Settings.rescue_interval

    def __init__(self, store: Store, model: str, min_rows: int, interval: float | None = None) -> None:
        super().__init__(interval)
        self.store = store
        self.model = model
        self.min_rows = min_rows

    async def run_once(self) -> bool:
        return await build_index_when_due(self.store, self.model, self.min_rows) == "ready"
