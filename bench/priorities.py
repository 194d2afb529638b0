"""Priorities under a backlog: write -> vector seconds by priority while a 20,000-row priority-9
backlog drains and the application keeps editing priority-2 and priority-4 rows.

    python bench/priorities.py [--backlog 20000] [--modes local,qstash,qstash-one-lane]
                               [--edits-per-second 5] [--provider hash|openai-fake] [--latency-ms 50]
                               [--caps 250,1000,4000]

Each mode runs on a fresh database: 1,000 courses (priority 2) and 1,000 posts (priority 4) are
embedded first; then the backlog (a table registered at priority 9) is written in one statement,
the system starts, and a writer edits a random course `--edits-per-second` times a second and a
random post half as often until the backlog is drained. Write -> vector is each job's
finished_at - created_at, read from embedq.jobs afterwards.

Modes, side by side in one run:
- local: `embedq listen` in this process (shipped defaults) processes the jobs;
- qstash: the listener (in this process) publishes through the QStash-compatible test server
  (tests/qstash_server, in this process) to the webhook, over real HTTP; the webhook runs in a
  process of its own, as deployed (this script, `--serve-webhook`). Shipped defaults: one
  flow-control key per priority tier and a cap of jobs in flight per tier;
- qstash-one-lane: the same with one tier for every priority and no cap, as embedq published
  before: the whole backlog at once, into one lane.

`--caps` reruns the qstash mode with other EMBEDQ_DISPATCH_MAX_IN_FLIGHT values (how the shipped
default was chosen). The embedder is `embedq.testing.HashEmbedder` (zero cost: the database,
QStash hops and the webhook are what is measured), or with `--provider openai-fake` the openai
provider against tests/fakes/openai_server.py answering every request after `--latency-ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import scratch_database
from embedq import db
from embedq.listener import Listener
from embedq.providers import create_embedder
from embedq.providers.base import Embedder
from embedq.settings import Settings
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.fakes.openai_server import FakeOpenAIServer
from tests.http_server import free_port
from tests.qstash_server import QStashServer

EDITED_ROWS = 1000
TARGETS = {2: 10.0, 4: 60.0}  # p99 seconds: priority 1-2 within 10 s, 3-4 within a minute
UNCAPPED = 10**9


@dataclass
class Row:
    priority: int
    jobs: int
    p50: float
    p99: float
    worst: float


@dataclass
class Result:
    mode: str
    drain_seconds: float
    backlog: int
    rows: list[Row]

    def p99(self, priority: int) -> float | None:
        return next((r.p99 for r in self.rows if r.priority == priority), None)


async def prepare(dsn: str, settings: Settings, embedder: Embedder, backlog: int) -> None:
    conn = await db.connect(dsn, "embedq-bench")
    try:
        await conn.execute(
            "INSERT INTO embedq_sample.courses (title, description) "
            "SELECT 'course ' || g, 'what course ' || g || ' teaches' FROM generate_series(1, $1) g",
            EDITED_ROWS,
        )
        await conn.execute(
            "INSERT INTO embedq_sample.posts (title, body) "
            "SELECT 'post ' || g, 'what post ' || g || ' says' FROM generate_series(1, $1) g",
            EDITED_ROWS,
        )
        await Listener(dsn, embedder, dataclasses.replace(settings, qstash_token=None)).run(drain=True)
        await conn.execute(
            "CREATE TABLE public.backlog_notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text)"
        )
        await conn.execute("SELECT embedq.register_source('note', 'public.backlog_notes', ARRAY['body'], 9)")
        await conn.execute("DELETE FROM embedq.jobs")  # only what follows is measured
        await conn.execute(
            "INSERT INTO public.backlog_notes (body) SELECT 'backlog note ' || g FROM generate_series(1, $1) g",
            backlog,
        )
    finally:
        await conn.close()


async def edit_while_draining(dsn: str, per_second: float, drained: asyncio.Event) -> int:
    """Edit a random course every 1/per_second s and a random post every 2/per_second s."""
    rng = random.Random(11)
    conn = await db.connect(dsn, "embedq-bench-writer")
    edits = 0
    try:
        started = time.perf_counter()
        while not drained.is_set():
            table = "courses" if edits % 3 != 2 else "posts"
            await conn.execute(
                f"UPDATE embedq_sample.{table} SET title = $2 WHERE id = $1",
                rng.randint(1, EDITED_ROWS),
                f"edit {edits}",
            )
            edits += 1
            # 2 course edits, then 1 post edit, per 3 / (1.5 * per_second) seconds
            await asyncio.sleep(max(0.0, started + edits / (1.5 * per_second) - time.perf_counter()))
    finally:
        await conn.close()
    return edits


async def wait_drained(dsn: str, backlog: int, drained: asyncio.Event, timeout: float) -> float:
    conn = await db.connect(dsn, "embedq-bench-watch")
    started = time.perf_counter()
    try:
        while (
            await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE content_type = 'note' AND status = 'done'")
            < backlog
        ):
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"the backlog was not drained in {timeout} s")
            await asyncio.sleep(0.25)
        drained.set()
        while await conn.fetchval(
            "SELECT count(*) FROM embedq.jobs WHERE status NOT IN ('done', 'dead')"
        ):  # the last edits
            await asyncio.sleep(0.1)
        return await conn.fetchval(
            "SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8 FROM embedq.jobs "
            "WHERE content_type = 'note'"
        )
    finally:
        await conn.close()


async def latencies(dsn: str) -> list[Row]:
    conn = await db.connect(dsn, "embedq-bench")
    try:
        rows = await conn.fetch(
            """SELECT priority, count(*) AS jobs,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds) AS p99, max(seconds) AS worst
               FROM (SELECT priority, extract(epoch FROM finished_at - created_at)::float8 AS seconds
                     FROM embedq.jobs WHERE status = 'done') AS done
               GROUP BY priority ORDER BY priority"""
        )
        dead = await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE status = 'dead'")
        if dead:
            raise RuntimeError(f"{dead} jobs ended dead")
        return [Row(r["priority"], r["jobs"], r["p50"], r["p99"], r["worst"]) for r in rows]
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def embedder_for(args: argparse.Namespace) -> AsyncIterator[tuple[dict[str, str], Embedder | None]]:
    """(environment, embedder to pass in) of the chosen provider."""
    if args.provider == "hash":
        yield {}, HashEmbedder()
        return
    async with FakeOpenAIServer(dimensions=64, latency=args.latency_ms / 1000) as server:
        env = {
            "EMBEDQ_PROVIDER": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-bench",
            "EMBEDQ_MODEL": "bench-model",
            "EMBEDQ_DIMENSIONS": "64",
        }
        yield env, None


@contextlib.asynccontextmanager
async def webhook_process(env: dict[str, str], port: int) -> AsyncIterator[None]:
    """This script with --serve-webhook: the webhook in a process of its own, as deployed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-webhook", env={**os.environ, **env, "EMBEDQ_PORT": str(port)}
    )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                if process.returncode is not None:
                    raise RuntimeError("the webhook process ended at start")
                await asyncio.sleep(0.1)
        yield
    finally:
        process.terminate()
        await process.wait()


def serve_webhook() -> None:
    """The webhook on EMBEDQ_PORT, the settings from the environment; HashEmbedder unless a provider is set."""
    import uvicorn

    settings = Settings.from_env()
    embedder = HashEmbedder() if "EMBEDQ_PROVIDER" not in os.environ else None
    app = create_app(settings, embedder=embedder)
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="warning", access_log=False, lifespan="on")


async def run_mode(mode: str, args: argparse.Namespace, mode_env: dict[str, str]) -> Result:
    with scratch_database() as dsn:
        async with embedder_for(args) as (provider_env, given), contextlib.AsyncExitStack() as stack:
            env = {**provider_env, **mode_env}
            if mode.startswith("qstash"):
                qstash = await stack.enter_async_context(QStashServer())
                port = free_port()
                env |= {**qstash.env, "EMBEDQ_WEBHOOK_URL": f"http://127.0.0.1:{port}/v1/jobs"}
            settings = Settings.from_env(env, database_url=dsn)
            embedder = given or create_embedder(settings)
            if given is None and hasattr(embedder, "aclose"):
                stack.push_async_callback(embedder.aclose)
            await prepare(dsn, settings, embedder, args.backlog)
            if mode.startswith("qstash"):
                await stack.enter_async_context(webhook_process({**env, "DATABASE_URL": dsn}, port))
            listener = Listener(dsn, embedder, settings)
            listening = asyncio.create_task(listener.run())
            drained = asyncio.Event()
            writer = asyncio.create_task(edit_while_draining(dsn, args.edits_per_second, drained))
            try:
                drain_seconds = await wait_drained(dsn, args.backlog, drained, args.timeout)
            finally:
                drained.set()
                await writer
                listener.stop()
                await listening
            return Result(mode, drain_seconds, args.backlog, await latencies(dsn))


def print_result(result: Result, label: str) -> None:
    print(
        f"\n{label}: backlog of {result.backlog:,} drained in {result.drain_seconds:.1f} s "
        f"({result.backlog / result.drain_seconds:,.0f} jobs/s)"
    )
    print(f"  {'priority':>8} {'jobs':>7} {'p50 s':>8} {'p99 s':>8} {'max s':>8}  target p99")
    for row in result.rows:
        target = TARGETS.get(row.priority)
        verdict = "" if target is None else f"<= {target:.0f} s {'ok' if row.p99 <= target else 'MISSED'}"
        print(f"  {row.priority:>8} {row.jobs:>7,} {row.p50:>8.2f} {row.p99:>8.2f} {row.worst:>8.2f}  {verdict}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--modes", default="local,qstash,qstash-one-lane")
    parser.add_argument("--edits-per-second", type=float, default=5.0, help="course edits; posts get half as many")
    parser.add_argument("--provider", choices=["hash", "openai-fake"], default="hash")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the openai fake's answer time")
    parser.add_argument("--caps", default="", help="more EMBEDQ_DISPATCH_MAX_IN_FLIGHT values to run in qstash mode")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("embedq").setLevel(logging.ERROR)  # a published backlog logs every batch

    provider = (
        "HashEmbedder (zero cost)" if args.provider == "hash" else f"openai fake, {args.latency_ms:.0f} ms a request"
    )
    print(
        f"embedder: {provider}; edits: {args.edits_per_second:g} course + {args.edits_per_second / 2:g} post a second"
    )
    results: dict[str, Result] = {}
    one_lane = {"EMBEDQ_QSTASH_TIERS": "1-9", "EMBEDQ_DISPATCH_MAX_IN_FLIGHT": str(UNCAPPED)}
    mode_env: dict[str, dict[str, str]] = {"local": {}, "qstash": {}, "qstash-one-lane": one_lane}
    for name in [m for m in args.modes.split(",") if m]:
        results[name] = await run_mode(name, args, mode_env[name])
        print_result(results[name], name)
    for cap in [int(c) for c in args.caps.split(",") if c]:
        name = f"qstash, EMBEDQ_DISPATCH_MAX_IN_FLIGHT={cap}"
        results[name] = await run_mode("qstash", args, {"EMBEDQ_DISPATCH_MAX_IN_FLIGHT": str(cap)})
        print_result(results[name], name)

    if "qstash" in results and "qstash-one-lane" in results:
        tiers, one_lane = results["qstash"], results["qstash-one-lane"]
        print("\nqstash-one-lane / qstash, side by side:")
        for priority in (2, 4):
            before, after = one_lane.p99(priority), tiers.p99(priority)
            if before is not None and after:
                print(f"  priority {priority} p99: {before / after:,.1f}x longer in one lane")
        print(f"  backlog drain time: {one_lane.drain_seconds / tiers.drain_seconds:.2f}x")


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve-webhook"]:
        serve_webhook()
    else:
        asyncio.run(main())
