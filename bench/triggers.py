"""What the triggers cost the application's writes. Each pair is measured side by side in one
run: `courses` with embedq's triggers, and the same table unregistered. Prints ratios.

    python bench/triggers.py [--rounds 3] [--rows 100000] [--single 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import psycopg

from bench._support import median, scratch_database, timed

COURSE_FIELDS = "ARRAY['title', 'description', 'category', 'tags', 'requirements', 'learning_objectives']"


def set_triggers(conn: psycopg.Connection, installed: bool) -> None:
    registered = conn.execute("SELECT count(*) FROM embedq.sources WHERE content_type = 'course'").fetchone()[0]
    if installed and not registered:
        conn.execute(f"SELECT embedq.register_source('course', 'embedq_sample.courses', {COURSE_FIELDS}, 2)")
    elif not installed and registered:
        conn.execute("SELECT embedq.unregister_source('course')")


def reset(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE embedq_sample.courses, lessons, embedq.jobs RESTART IDENTITY CASCADE")
    conn.execute("VACUUM ANALYZE courses")
    conn.execute("VACUUM ANALYZE embedq.jobs")
    conn.execute("CHECKPOINT")


async def single_row_inserts(dsn: str, clients: int, per_client: int) -> float:
    """Rows per second: `clients` connections, one INSERT per transaction."""
    conns = [await asyncpg.connect(dsn) for _ in range(clients)]

    async def client(conn: asyncpg.Connection, n: int) -> None:
        statement = await conn.prepare(
            "INSERT INTO embedq_sample.courses (title, description, category, tags) VALUES ($1, $2, 'bench', '{a,b}')"
        )
        for i in range(n):
            await statement.fetch(f"Course {i}", f"Description of course {i}")

    start = time.perf_counter()
    await asyncio.gather(*(client(c, per_client) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.close()
    return clients * per_client / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=2_000, help="single-row inserts per client")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    with scratch_database() as dsn, psycopg.connect(dsn, autocommit=True) as conn:
        results: dict[str, dict[bool, list[float]]] = {
            "single": {True: [], False: []},
            "insert": {True: [], False: []},
            "update": {True: [], False: []},
        }
        for _ in range(args.rounds):
            for installed in (False, True):  # interleaved, so drift hits both sides alike
                set_triggers(conn, installed)
                reset(conn)
                results["single"][installed].append(asyncio.run(single_row_inserts(dsn, args.clients, args.single)))
                reset(conn)
                results["insert"][installed].append(
                    timed(
                        lambda: conn.execute(
                            "INSERT INTO embedq_sample.courses (title, description, category, tags, requirements) "
                            "SELECT 'Course ' || g, 'Description ' || g, 'cat' || (g %% 10), "
                            "ARRAY['t' || (g %% 7)], 'none' "
                            "FROM generate_series(1, %s) g",
                            (args.rows,),
                        )
                    )
                )
                conn.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now()")
                conn.execute("VACUUM ANALYZE embedq.jobs")
                conn.execute("VACUUM ANALYZE courses")
                results["update"][installed].append(
                    timed(
                        lambda: conn.execute(
                            "UPDATE embedq_sample.courses SET description = description || ' (updated)'"
                        )
                    )
                )
        set_triggers(conn, True)

    single_with, single_without = median(results["single"][True]), median(results["single"][False])
    insert_with, insert_without = median(results["insert"][True]), median(results["insert"][False])
    update_with, update_without = median(results["update"][True]), median(results["update"][False])
    print(f"median of {args.rounds} interleaved rounds; triggers installed vs the same table unregistered")
    print(
        f"single-row INSERT ({args.clients} clients): {single_with:,.0f} vs {single_without:,.0f} rows/s"
        f"  -> throughput ratio {single_with / single_without:.2f}  (target >= 0.85)"
    )
    print(
        f"{args.rows:,}-row INSERT..SELECT: {insert_with:.3f}s vs {insert_without:.3f}s"
        f"  -> time ratio {insert_with / insert_without:.2f}x  (target <= 1.3x)"
    )
    print(
        f"UPDATE of an embedded field on {args.rows:,} rows: {update_with:.3f}s vs {update_without:.3f}s"
        f"  -> time ratio {update_with / update_without:.2f}x  (target <= 2.5x)"
    )


if __name__ == "__main__":
    main()
