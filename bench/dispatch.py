"""Dispatch throughput in QStash mode: a backlog of pending jobs published to the
QStash-compatible test server, whose deliveries go to a receiver that answers 200 at once.

    python bench/dispatch.py [--jobs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from bench._support import scratch_database
from embedq import db
from embedq.listener import Listener, ListenerConfig
from embedq.settings import Settings
from embedq.testing import HashEmbedder
from tests.http_server import serve_app
from tests.qstash_server import QStashServer


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    delivered = 0

    async def receive(request):
        nonlocal delivered
        delivered += 1
        return Response(status_code=200)

    receiver = Starlette(
        routes=[Route("/v1/jobs", receive, methods=["POST"]), Route("/v1/failures", receive, methods=["POST"])]
    )
    with scratch_database() as dsn:
        conn = await db.connect(dsn, "embedq-bench")
        await conn.execute(
            "INSERT INTO embedq_sample.courses (title) SELECT 'course ' || g FROM generate_series(1, $1) g", args.jobs
        )
        await conn.execute("SELECT embedq.jobs_ingest()")  # the backlog: pending jobs
        async with QStashServer(time_scale=0.001) as qstash, serve_app(receiver) as receiver_url:
            env = {**qstash.env, "EMBEDQ_WEBHOOK_URL": f"{receiver_url}/v1/jobs"}
            # the receiver ends no job: uncapped, the listener publishes the whole backlog (the rate measured here)
            settings = dataclasses.replace(Settings.from_env(env, database_url=dsn), dispatch_max_in_flight=args.jobs)
            listener = Listener(dsn, HashEmbedder(), settings, ListenerConfig(poll_interval=0.5))
            start = time.perf_counter()
            totals = await listener.run(drain=True)
            dispatch_seconds = time.perf_counter() - start
            await qstash.wait_idle(timeout=300)
            delivered_seconds = time.perf_counter() - start
            counters = qstash.counters
        assert totals.dispatched == args.jobs, totals
        assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE status = 'dispatched'") == args.jobs
        await conn.close()
    calls = counters.publish_calls + counters.batch_calls
    print(
        f"dispatched {args.jobs:,} jobs in {dispatch_seconds:.2f} s -> {args.jobs / dispatch_seconds:,.0f} jobs/s "
        f"(target >= 5,000)"
    )
    print(
        f"publish calls: {calls} ({calls / args.jobs * 1000:.1f} per 1,000 jobs, target <= 20); "
        f"messages: {counters.messages} ({counters.messages / args.jobs * 1000:.1f} per 1,000 jobs)"
    )
    print(f"all {delivered:,} deliveries answered after {delivered_seconds:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
