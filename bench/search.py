"""Search at scale: synthetic clustered vectors (100,000 x 384 by default), the model's HNSW index
as embedq builds it, top-10 latency (p50/p95, client-side, one connection) and recall@10 against
an exact scan, unfiltered and with filters that keep 5% of the rows (a content type; a
filterable column in metadata). Then what the keyword index (revision 0007: a tsvector column
and two GIN indexes) costs bulk vector writes, measured side by side in one run.

    python bench/search.py [--rows 100000] [--queries 200] [--writes 20000] [--ef 40,64,100,200]

Runs on the embedded server unless DATABASE_URL is set. Targets on a 2-core machine:
p50 <= 10 ms and recall@10 >= 0.95, filtered too.

The vectors are 100 clusters of 1,000 (noise 0.8 around each centre), so a filter keeping 5% still
leaves some 50 vectors per cluster and the filtered top 10 are real neighbours. With clusters of
100 (--clusters 1000), the 6th to 10th filtered neighbours lie in other clusters at the noise
floor, all but tied, and recall@10 measures ties rather than the index.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from bench._support import scratch_database
from embedq import db
from embedq.queries import query

MODEL = "bench-384"
DIMENSIONS = 384
RARE_TYPE = "rare"  # 5% of the rows
TENANT = "7"  # metadata filter: 5% of the rows, independent of the type
COMMON_WORDS = ["the", "a", "of", "to", "and", "in", "is", "for", "how", "what", "index", "data", "query"]
# chunks of about 1,200 characters (a 400-token chunk of English is some 1,600)
TEXTS = {
    "English": (
        "Partial indexes keep only the rows a query asks for, so they stay small and fast to maintain. "
        "Read EXPLAIN ANALYZE from the leaves up: each node hands rows to the one above it. Course code CS-{i}. "
    )
    * 6,
    "Chinese": (
        "麻婆豆腐讲究麻、辣、烫、香、酥、嫩六个字。豆腐选嫩一点的卤水豆腐，切成两厘米的方块，放进加了盐的开水里煮两分钟，"
        "这样豆腐不容易碎，也能去掉豆腥味。课程编号 CK-{i}。"
    )
    * 8,
}


def clustered(rng: np.random.Generator, centres: np.ndarray, n: int, spread: float) -> np.ndarray:
    points = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, DIMENSIONS))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def synthetic_texts(rng: np.random.Generator, n: int) -> list[str]:
    """Keyword content for hybrid search: 60 words of a 20,000-word vocabulary (Zipf), 20 common
    English words, and a code of its own (CS-<row>), in random order."""
    vocabulary = np.array([f"w{i}" for i in range(20_000)])
    frequencies = 1 / np.arange(1, 20_001) ** 1.1
    words = vocabulary[rng.choice(20_000, (n, 60), p=frequencies / frequencies.sum())]
    common = rng.choice(COMMON_WORDS, (n, 20))
    texts = []
    for i in range(n):
        row = [*words[i], *common[i], f"CS-{i}"]
        rng.shuffle(row)
        texts.append(" ".join(row))
    return texts


def load(dsn: str, vectors: np.ndarray, types: np.ndarray, tenants: np.ndarray, texts: list[str]) -> float:
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("SELECT embedq.model_ensure(%s, 'bench', %s)", (MODEL, DIMENSIONS))
        # the vectors are written directly; the sources only declare tenant_id filterable
        conn.execute("CREATE TABLE bench_items (id bigint PRIMARY KEY, body text, tenant_id text)")
        for content_type in ("common", RARE_TYPE):
            conn.execute(
                "SELECT embedq.register_source(%s, 'bench_items', ARRAY['body'], filters => ARRAY['tenant_id'])",
                (content_type,),
            )
        with conn.cursor() as cur:
            copy_sql = (
                "COPY embedq.embeddings (content_type, source_id, model, chunk_index, embedding, content_hash, "
                "content, metadata) FROM STDIN WITH (FORMAT BINARY)"
            )
            with cur.copy(copy_sql) as copy:
                copy.set_types(["text", "text", "text", "int4", "vector", "text", "text", "jsonb"])
                for i, vector in enumerate(vectors):
                    metadata = Jsonb({"chunks": 1, "filters": {"tenant_id": [str(tenants[i])]}})
                    copy.write_row((types[i], str(i), MODEL, 0, vector, "h", texts[i], metadata))
        conn.execute("VACUUM ANALYZE embedq.embeddings")
    return time.perf_counter() - started


def scalar(conn: psycopg.Connection, sql: str, *args: object) -> Any:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


def build_index(dsn: str) -> tuple[float, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")  # the whole graph fits: one pass
        ddl = scalar(conn, "SELECT embedq.model_index_ddl(%s)", MODEL)
        started = time.perf_counter()
        conn.execute(ddl)
        seconds = time.perf_counter() - started
        size = scalar(
            conn, "SELECT pg_relation_size(format('embedq.%%I', embedq._model_index_name(%s))::regclass)", MODEL
        )
        conn.execute("ANALYZE embedq.embeddings")
    return seconds, size


def exact_top(vectors: np.ndarray, mask: np.ndarray | None, queries: np.ndarray, k: int = 10) -> list[set[str]]:
    ids = np.arange(len(vectors)) if mask is None else np.flatnonzero(mask)
    subset = vectors[ids]
    tops = []
    for q in queries:
        similarity = subset @ q
        best = np.argpartition(-similarity, k)[:k]
        tops.append({str(ids[i]) for i in best})
    return tops


async def timed_queries(
    conn: asyncpg.Connection, sql: str, args: Callable[[np.ndarray], Sequence], queries: np.ndarray
) -> tuple[list[float], list[list[str]]]:
    latencies, results = [], []
    for q in queries[:5]:  # warm the cache and the plan
        await conn.fetch(sql, *args(q))
    for q in queries:
        started = time.perf_counter()
        rows = await conn.fetch(sql, *args(q))
        latencies.append((time.perf_counter() - started) * 1000)
        results.append([r[0] for r in rows])
    return latencies, results


def line(label: str, latencies: list[float], results: list[list[str]], truth: list[set[str]]) -> str:
    recall = statistics.mean(len(set(found) & want) / len(want) for found, want in zip(results, truth, strict=True))
    latencies = sorted(latencies)
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    return f"  {label:58} p50 {statistics.median(latencies):6.2f} ms  p95 {p95:6.2f} ms  recall@10 {recall:.3f}"


async def searches(dsn: str, vectors, types, tenants, queries, ef_values: list[int]) -> None:
    conn = await db.connect(dsn, "embedq-bench")
    try:
        truth_all = exact_top(vectors, None, queries)
        truth_rare = exact_top(vectors, types == RARE_TYPE, queries)
        truth_tenant = exact_top(vectors, tenants == TENANT, queries)

        print("the raw HNSW query, by hnsw.ef_search (session setting):")
        raw = (
            "SELECT e.source_id FROM embedq.embeddings e WHERE e.model = 'bench-384' {where} "
            "ORDER BY e.embedding::vector(384) <=> $1::vector(384) LIMIT 10"
        )
        await conn.execute("SET hnsw.iterative_scan = 'relaxed_order'")
        for ef in ef_values:
            await conn.execute(f"SET hnsw.ef_search = {ef}")
            lat, res = await timed_queries(conn, raw.format(where=""), lambda q: (q,), queries)
            print(line(f"ef_search {ef}", lat, res, truth_all))
            lat, res = await timed_queries(
                conn, raw.format(where="AND e.content_type = 'rare'"), lambda q: (q,), queries
            )
            print(line(f"ef_search {ef}, type filter (5%), iterative scan", lat, res, truth_rare))
        await conn.execute("RESET hnsw.ef_search")
        await conn.execute("RESET hnsw.iterative_scan")

        print("the shipped functions (embedq.search; Python's search adds the query's embedding and a log row):")
        shipped = "SELECT source_id FROM embedq.search($1, 10, $2::text[], filters => $3::jsonb, chunks => $4)"
        cases = [
            ("embedq.search, chunks", (None, None, True), truth_all),
            ("embedq.search, one hit per row", (None, None, False), truth_all),
            ("embedq.search, type filter (5%)", ([RARE_TYPE], None, False), truth_rare),
            ("embedq.search, metadata filter tenant_id (5%)", (None, {"tenant_id": TENANT}, False), truth_tenant),
        ]
        for label, extra, truth in cases:

            def arguments(q: np.ndarray, extra: tuple = extra) -> tuple:
                return (q, *extra)

            lat, res = await timed_queries(conn, shipped, arguments, queries)
            print(line(label, lat, res, truth))
        exact = (
            "WITH kept AS MATERIALIZED (SELECT source_id, embedding FROM embedq.embeddings "
            "WHERE model = 'bench-384' AND content_type = 'rare') "
            "SELECT source_id FROM kept ORDER BY embedding::vector(384) <=> $1::vector(384) LIMIT 10"
        )
        lat, res = await timed_queries(conn, exact, lambda q: (q,), queries)
        print(line("exact scan of the 5% (the fallback when the index gives up)", lat, res, truth_rare))

        print("hybrid search (keywords + vectors), the SQL function alone:")
        rng = np.random.default_rng(5)
        codes = [int(c) for c in rng.integers(0, len(vectors), len(queries))]
        hybrid = "SELECT source_id, keyword_rank FROM embedq.hybrid_search($1, $2, 10)"
        for label, text in (
            ("a code among common words ('what is the course CS-<n> about')", "what is the course CS-{code} about"),
            ("common words only ('how to index the data for a query')", "how to index the data for a query"),
        ):
            latencies, found = [], 0
            for q, code in zip(queries, codes, strict=True):
                started = time.perf_counter()
                rows = await conn.fetch(hybrid, text.format(code=code), q)
                latencies.append((time.perf_counter() - started) * 1000)
                found += any(r["source_id"] == str(code) and r["keyword_rank"] == 1 for r in rows)
            latencies.sort()
            p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
            note = f"  the code's row ranked first by keywords: {found}/{len(queries)}" if "{code}" in text else ""
            print(f"  {label:66} p50 {statistics.median(latencies):6.2f} ms  p95 {p95:6.2f} ms{note}")
    finally:
        await conn.close()


async def write_cost(dsn: str, chunks: int, rounds: int, language: str, hnsw: bool) -> None:
    """embeddings_upsert + embeddings_set_metadata, as processing writes a batch, with and without
    revision 0007's keyword column and GIN indexes; without the written model's HNSW index (a
    first load: embedq builds it afterwards) or with it (every later write)."""
    rng = np.random.default_rng(7)
    vectors = clustered(rng, rng.standard_normal((50, DIMENSIONS)), chunks, 0.8)
    texts = [TEXTS[language].format(i=i) for i in range(chunks)]
    metadata = [{"chunks": 1, "filters": {"category": [f"c{i % 20}"]}} for i in range(chunks)]
    conn = await db.connect(dsn, "embedq-bench")
    await conn.execute("SELECT embedq.model_ensure('bench-writes', 'bench', $1)", DIMENSIONS)
    index_ddl = await conn.fetchval(query("models_index_ddl"), "bench-writes")
    await conn.execute(index_ddl if hnsw else await conn.fetchval(query("models_index_drop_ddl"), "bench-writes"))
    batch = 500

    async def write() -> float:
        await conn.execute("DELETE FROM embedq.embeddings WHERE model = 'bench-writes'")
        await conn.execute("VACUUM embedq.embeddings")
        started = time.perf_counter()
        for start in range(0, chunks, batch):
            rows = range(start, min(start + batch, chunks))
            async with conn.transaction():
                await conn.execute(
                    query("embeddings_upsert"),
                    "bench-writes",
                    ["course"] * len(rows),
                    [str(i) for i in rows],
                    [0] * len(rows),
                    [Vector(vectors[i]) for i in rows],
                    ["h"] * len(rows),
                    [texts[i] for i in rows],
                    [metadata[i] for i in rows],
                )
                await conn.execute(
                    query("embeddings_set_metadata"),
                    "bench-writes",
                    ["course"] * len(rows),
                    [str(i) for i in rows],
                    [metadata[i] for i in rows],
                )
        return time.perf_counter() - started

    async def keyword_index(present: bool) -> None:
        if present:
            await conn.execute(
                "ALTER TABLE embedq.embeddings ADD COLUMN IF NOT EXISTS fts tsvector "
                "GENERATED ALWAYS AS (embedq.fts_document(content)) STORED"
            )
            await conn.execute("CREATE INDEX IF NOT EXISTS embeddings_fts ON embedq.embeddings USING gin (fts)")
            await conn.execute(
                "CREATE INDEX IF NOT EXISTS embeddings_metadata ON embedq.embeddings "
                "USING gin (metadata jsonb_path_ops)"
            )
        else:
            await conn.execute("DROP INDEX IF EXISTS embedq.embeddings_fts, embedq.embeddings_metadata")
            await conn.execute("ALTER TABLE embedq.embeddings DROP COLUMN IF EXISTS fts")

    timings: dict[bool, list[float]] = {True: [], False: []}
    try:
        # the bench's 100,000 vectors would make every ALTER a rewrite: writes get their own table state
        await conn.execute("DELETE FROM embedq.embeddings WHERE model = $1", MODEL)
        for _ in range(rounds):
            for present in (True, False):
                await keyword_index(present)
                timings[present].append(await write())
        await keyword_index(True)
    finally:
        await conn.close()
    with_index, without = statistics.median(timings[True]), statistics.median(timings[False])
    print(
        f"  {language + (', HNSW index' if hnsw else ', first load'):24} ({len(texts[0]):,} characters a chunk): "
        f"{chunks / with_index:,.0f} chunks/s with the keyword index vs {chunks / without:,.0f} without "
        f"-> {with_index / without:.2f}x the time, +{(with_index - without) / chunks * 1000:.2f} ms a chunk"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--clusters", type=int, default=100, help="1,000 vectors each at the default size")
    parser.add_argument("--spread", type=float, default=0.8, help="noise around each cluster centre")
    parser.add_argument("--ef", default="40,64,100,200", help="hnsw.ef_search values for the raw query")
    parser.add_argument("--writes", type=int, default=20_000, help="chunks for the write-cost comparison (0: skip)")
    parser.add_argument("--write-rounds", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(42)
    centres = rng.standard_normal((args.clusters, DIMENSIONS))
    vectors = clustered(rng, centres, args.rows, args.spread)
    types = np.where(rng.random(args.rows) < 0.05, RARE_TYPE, "common")
    tenants = np.where(rng.random(args.rows) < 0.05, TENANT, "1")
    queries = clustered(rng, centres, args.queries, args.spread)
    texts = synthetic_texts(rng, args.rows)

    with scratch_database() as dsn:
        seconds = load(dsn, vectors, types, tenants, texts)
        print(
            f"{args.rows:,} x {DIMENSIONS} vectors in {args.clusters} clusters loaded in {seconds:.1f} s "
            f"({(types == RARE_TYPE).mean():.1%} of type {RARE_TYPE!r}, "
            f"{(tenants == TENANT).mean():.1%} of tenant {TENANT})"
        )
        build_seconds, size = build_index(dsn)
        print(f"HNSW index (m 16, ef_construction 64, cosine): built in {build_seconds:.1f} s, {size / 2**20:,.0f} MiB")
        asyncio.run(searches(dsn, vectors, types, tenants, queries, [int(v) for v in args.ef.split(",")]))
        if args.writes:
            print(
                f"bulk vector writes (embeddings_upsert + embeddings_set_metadata, {args.writes:,} chunks in batches "
                f"of 500; median of {args.write_rounds} rounds side by side):"
            )
            for hnsw in (False, True):
                for language in TEXTS:
                    asyncio.run(write_cost(dsn, args.writes, args.write_rounds, language, hnsw))


if __name__ == "__main__":
    main()
