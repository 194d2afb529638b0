"""Search: embed a query with the active model's embedder, ask embedq.search or
embedq.hybrid_search (sql/functions/search.sql), log the search.

The one function the CLI, the HTTP route and the Python API call. By default a hit is a row
(its best chunk, score and text); `chunks=True` returns chunks. `hybrid=True` fuses keyword
matches with the vector results (reciprocal rank fusion): exact tokens such as a course code or
a name are found even where embeddings blur them. `min_score` is the least cosine similarity in
both modes; `filters` ({"column": value}) keep rows whose source registered the column as
filterable; `offset` pages through the hits.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import asyncpg
from pgvector import Vector

from embedq.errors import InvalidInput
from embedq.providers.base import Embedder
from embedq.queries import query

MAX_RESULTS = 1000
MAX_OFFSET = 9000

Origin = Literal["cli", "http", "python"]
FilterValue = str | int | float | bool | Sequence[str | int | float | bool]


@dataclass(frozen=True)
class Hit:
    content_type: str
    source_id: str
    chunk_index: int
    #: what hits are ranked by: the cosine similarity, or in hybrid search the fused rank score
    #: (1 = first among both the keyword and the vector results)
    score: float
    #: cosine similarity between the query and the hit (its row's best chunk, or the chunk)
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
    content_types: Sequence[str] | None = None,
    origin: Origin = "cli",
    hybrid: bool = False,
    min_score: float | None = None,
    filters: Mapping[str, FilterValue] | None = None,
    chunks: bool = False,
    offset: int = 0,
) -> list[Hit]:
    text = text.strip()
    if not text:
        raise InvalidInput("the search text is empty")
    if not 1 <= k <= MAX_RESULTS:
        raise InvalidInput(f"k must be between 1 and {MAX_RESULTS}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}")
    if min_score is not None and not -1.0 <= min_score <= 1.0:
        raise InvalidInput("min_score is a cosine similarity: between -1 and 1")
    active = await conn.fetchrow(query("models_active"))
    if active is None:
        raise InvalidInput("nothing has been embedded yet: run `embedq listen` (or `embedq demo`) first")
    if active["name"] != embedder.model:
        raise InvalidInput(
            f"the active model is {active['name']!r} but this process embeds with {embedder.model!r}: "
            f"set EMBEDQ_PROVIDER/EMBEDQ_MODEL to match, or `embedq models activate {embedder.model}`"
        )
    types = list(content_types) if content_types else None
    if types:
        known = {r["content_type"] for r in await conn.fetch(query("sources_list"))}
        unknown = sorted(set(types) - known)
        if unknown:
            raise InvalidInput(f"unknown content type {unknown[0]!r} (known: {', '.join(sorted(known))})")
    filters_json = dict(filters) if filters else None  # the connection's jsonb codec encodes it

    started = time.perf_counter()
    vector = Vector(await embedder.embed_query(text))
    try:
        if hybrid:
            rows = await conn.fetch(
                query("search_hybrid"),
                text,
                vector,
                k,
                types,
                embedder.model,
                filters_json,
                min_score,
                chunks,
                offset,
            )
        else:
            rows = await conn.fetch(
                query("search_vector"), vector, k, types, embedder.model, filters_json, min_score, chunks, offset
            )
    except asyncpg.InvalidParameterValueError as exc:
        # a filter on a column no searched type registered as filterable, or of a shape not allowed
        raise InvalidInput(_without_prefix(exc)) from None
    hits = [Hit(**dict(r)) for r in rows]
    await conn.execute(
        query("search_log_insert"),
        text,
        embedder.model,
        types,
        k,
        len(hits),
        (time.perf_counter() - started) * 1000,
        origin,
    )
    return hits


def parse_filters(pairs: Sequence[str]) -> dict[str, str | list[str]]:
    """`--filter KEY=VALUE` options as search filters; a key given twice must match both values."""
    filters: dict[str, str | list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput(f"filter {pair!r} is not KEY=VALUE")
        previous = filters.get(key)
        if previous is None:
            filters[key] = value
        else:
            filters[key] = [*([previous] if isinstance(previous, str) else previous), value]
    return filters


def _without_prefix(exc: asyncpg.PostgresError) -> str:
    message = str(exc.args[0] if exc.args else exc).removeprefix("embedq: ")
    detail = exc.detail
    return f"{message} ({detail.rstrip('.')})" if detail else message
