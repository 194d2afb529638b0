"""Search: embed a query with the active model's embedder, ask embedq.search, log the search."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal

import asyncpg
from pgvector import Vector

from embedq.errors import InvalidInput
from embedq.providers.base import Embedder
from embedq.queries import query

MAX_RESULTS = 1000


@dataclass(frozen=True)
class Hit:
    content_type: str
    source_id: str
    chunk_index: int
    similarity: float
    content: str

    def as_json(self) -> dict:
        return asdict(self)


async def search(
    conn: asyncpg.Connection,
    embedder: Embedder,
    text: str,
    *,
    k: int = 10,
    content_types: list[str] | None = None,
    origin: Literal["cli", "http"] = "cli",
) -> list[Hit]:
    text = text.strip()
    if not text:
        raise InvalidInput("the search text is empty")
    if not 1 <= k <= MAX_RESULTS:
        raise InvalidInput(f"k must be between 1 and {MAX_RESULTS}")
    active = await conn.fetchrow(query("models_active"))
    if active is None:
        raise InvalidInput("nothing has been embedded yet: run `embedq listen` (or `embedq demo`) first")
    if active["name"] != embedder.model:
        raise InvalidInput(
            f"the active model is {active['name']!r} but this process embeds with {embedder.model!r}: "
            f"set EMBEDQ_PROVIDER/EMBEDQ_MODEL to match, or `embedq models activate {embedder.model}`"
        )
    if content_types:
        known = {r["content_type"] for r in await conn.fetch(query("sources_list"))}
        unknown = sorted(set(content_types) - known)
        if unknown:
            raise InvalidInput(f"unknown content type {unknown[0]!r} (known: {', '.join(sorted(known))})")
    started = time.perf_counter()
    vector = await embedder.embed_query(text)
    rows = await conn.fetch(query("search"), Vector(vector), k, content_types or None, embedder.model)
    hits = [Hit(**dict(r)) for r in rows]
    await conn.execute(
        query("search_log_insert"),
        text,
        embedder.model,
        content_types or None,
        k,
        len(hits),
        (time.perf_counter() - started) * 1000,
        origin,
    )
    return hits
