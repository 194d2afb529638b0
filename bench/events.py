"""What the job events cost (GET /v1/events): ids drawn from embedq.event_id_seq, `processing`
announcements and error texts, against jobs_announce as revision 0005 had it (no ids, no
`processing` events). Both are measured side by side in one run, alternating; prints ratios.

    python bench/events.py [--rounds 3] [--rows 3000] [--announce 10000]

1. the database path with a zero-cost embedder: rows/s from write to vector
2. one jobs_announce call for --announce jobs (a large ingest or completion)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._support import scratch_database
from bench.pipeline import write_and_drain
from embedq.resources import read_sql
from embedq.settings import Settings
from embedq.testing import HashEmbedder

OLD_LOOP = "FOR v_event IN SELECT DISTINCT e ->> 3 FROM jsonb_array_elements(p_jobs) e LOOP"


def announce_variants() -> dict[str, str]:
    """name -> CREATE FUNCTION embedq.jobs_announce as that variant has it."""
    old = read_sql("schema/0006_event_ids_down.sql").split("DROP SEQUENCE")[0]
    assert old.count(OLD_LOOP) == 1
    old = old.replace(OLD_LOOP, OLD_LOOP.replace(" e LOOP", " e WHERE e ->> 3 <> 'processing' LOOP"))
    functions = read_sql("functions/jobs.sql")
    start = functions.index("CREATE OR REPLACE FUNCTION embedq.jobs_announce")
    now = functions[start : functions.index("$$;", start) + 3]
    return {"0005": old, "now": now}


async def announce_seconds(dsn: str, jobs: int) -> float:
    """One call, rolled back: nothing is delivered, the sequence still advances."""
    conn = await asyncpg.connect(dsn)
    transaction = conn.transaction()
    try:
        await transaction.start()
        payload = json.dumps([[n, "course", str(n), "done"] for n in range(1, jobs + 1)])
        start = time.perf_counter()
        await conn.fetchval("SELECT embedq.jobs_announce($1::jsonb)", payload)
        return time.perf_counter() - start
    finally:
        await transaction.rollback()
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--announce", type=int, default=10000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with scratch_database() as dsn:
        settings = Settings.from_env({}, database_url=dsn)
        variants = announce_variants()
        rates: dict[str, list[float]] = {name: [] for name in variants}
        announce: dict[str, list[float]] = {name: [] for name in variants}
        conn = await asyncpg.connect(dsn)
        try:
            for _ in range(args.rounds):
                for name, function in variants.items():
                    await conn.execute(function)
                    run = await write_and_drain(dsn, settings, HashEmbedder(), args.rows, batch_size=500)
                    rates[name].append(run.rows_per_second)
                    announce[name].append(await announce_seconds(dsn, args.announce))
        finally:
            await conn.execute(variants["now"])
            await conn.close()

    old_rate, new_rate = statistics.median(rates["0005"]), statistics.median(rates["now"])
    print(
        f"database path, zero-cost embedder ({args.rows:,} rows, median of {args.rounds}): "
        f"{new_rate:,.0f} rows/s with event ids and processing events vs {old_rate:,.0f} rows/s as in 0005 "
        f"-> ratio {new_rate / old_rate:.2f}"
    )
    old_call, new_call = statistics.median(announce["0005"]), statistics.median(announce["now"])
    print(
        f"one jobs_announce of {args.announce:,} jobs: {new_call * 1000:.1f} ms vs {old_call * 1000:.1f} ms as in 0005 "
        f"-> ratio {new_call / old_call:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
