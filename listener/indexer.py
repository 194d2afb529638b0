"""The indexer: builds a model's HNSW index once the model has enough vectors.

Below EMBEDQ_HNSW_MIN_ROWS vectors, search scans them exactly (fast at that size, and exact).
Maintaining HNSW row by row costs about 1-2 ms per vector, so a first load without the index
and one bulk build afterwards is several times cheaper (pgvector's own advice; pgai's
vectorizer does the same with its `min_rows`). The build is CONCURRENTLY: writers and
searches go on meanwhile. An invalid index left by a failed build is dropped and rebuilt.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from embedq.db import CONNECTION_ERRORS
from embedq.queries import query

logger = logging.getLogger(__name__)

#: one builder per model across all listeners
BUILD_LOCK_NAMESPACE = 7_406_219


async def ensure_index(pool: asyncpg.Pool, model: str, min_rows: int) -> str:
    """Build the model's index if it has at least min_rows vectors. Returns the index state."""
    async with pool.acquire() as conn:
        state = await conn.fetchval(query("models_index_state"), model)
        if state == "ready":
            return state
        if not await conn.fetchval(query("models_has_vectors_at_least"), model, min_rows):
            return state
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", BUILD_LOCK_NAMESPACE, model):
            return state  # another listener is building it
        try:
            state = await conn.fetchval(query("models_index_state"), model)
            if state == "invalid":
                await conn.execute(await conn.fetchval(query("models_index_drop_ddl"), model))
            if state != "ready":
                started = time.perf_counter()
                logger.info("building the HNSW index", extra={"action": "index_build", "model": model})
                await conn.execute(await conn.fetchval(query("models_index_ddl"), model))
                logger.info(
                    "HNSW index ready",
                    extra={
                        "action": "index_build",
                        "model": model,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            return await conn.fetchval(query("models_index_state"), model)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", BUILD_LOCK_NAMESPACE, model)


async def run_indexer(pool: asyncpg.Pool, model: str, min_rows: int, interval: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            if await ensure_index(pool, model, min_rows) == "ready":
                return
        except CONNECTION_ERRORS as exc:
            logger.warning("indexer could not reach the database", extra={"action": "index_build", "error": str(exc)})
        except asyncpg.PostgresError as exc:
            logger.error("HNSW index build failed; will retry", extra={"action": "index_build", "error": str(exc)})
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass
