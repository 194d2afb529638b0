"""What the triggers cost the application's writes, and how soon an update reaches its vector.

Each write path gets its own copy of the course table (schema bench_<variant>); `plain` has no
trigger at all. Every workload runs --reps times, the variants taking turns (in a rotating order)
on the same server, so drift and neighbours hit them alike; a figure is the median over the
repetitions of the ratio to `plain` within the same repetition. Rows are course rows as the
issue measured them: a title and 40-80 words of description.

    python bench/triggers.py [--reps 7] [--rows 10000] [--variants before,row,shipped] [--latency 40]

Write paths (bench/trigger_variants.sql): `before` is embedq 0.1's statement-level triggers,
`row` the reference the issue names (a row-level trigger writing one queue row per row, as
pgai's vectorizer does), `row_noop` a row-level trigger that does nothing (the floor of any
trigger), `row_buffered` row-level aggregation of keys per transaction in a setting, `unlogged`
the shipped triggers writing an UNLOGGED inbox, and `shipped` what embedq.register_source installs.

Workloads: 10,000 single-row INSERTs in one transaction sent by a plpgsql loop (`server`: the
trigger's cost undiluted) and --client-rows of them sent over the socket (`client`: what an
application sees); single-row INSERTs in autocommit from --clients connections; one bulk
INSERT ... SELECT, with the wake-ups it sent; one UPDATE of every row; --update-rows single-row
UPDATEs in one transaction. Times are wall clock; the `cpu` lines compare the backend's own CPU
time in each side's best repetition, which the other processes on a shared machine disturb less.
Latency: a single-row UPDATE of an embedded field (autocommit) until its job's `done` event, i.e.
until the new vector is written; idle listener, shipped defaults, zero-cost embedder.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench._support import scratch_database
from embedq import db
from embedq.listener import Listener
from embedq.settings import Settings
from embedq.testing import HashEmbedder

COURSE_FIELDS = ["title", "description", "category", "tags", "requirements", "learning_objectives"]
VARIANTS_SQL = Path(__file__).with_name("trigger_variants.sql")
#: the vocabulary of the generated descriptions
VOCABULARY = (
    "bread sourdough knife skills python sql joins index vector search garden tomato soil compost guitar chord \
scale rhythm painting colour brush canvas history rome empire trade river mountain climb rope safety first aid kitchen \
oven flour yeast water salt practice lesson teacher student project deadline budget design layout print photo"
)
#: variants whose queued jobs the listener embeds (the others queue nothing it reads)
EMBEDDED = ("before", "row", "row_buffered", "shipped")


def variant_blocks() -> dict[str, str]:
    text = VARIANTS_SQL.read_text(encoding="utf-8")
    parts = re.split(r"^-- variant: (\w+)\n", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def table(variant: str) -> str:
    return f"bench_{variant}.courses"


async def create_variant(conn: asyncpg.Connection, variant: str) -> None:
    """bench_<variant>.courses, a copy of the course table with `variant`'s write path only."""
    schema = f"bench_{variant}"
    if await conn.fetchval("SELECT count(*) FROM embedq.sources WHERE content_type = $1", schema):
        await conn.execute("SELECT embedq.unregister_source($1)", schema)
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(f"CREATE TABLE {schema}.courses (LIKE embedq_sample.courses INCLUDING ALL)")
    if variant == "plain":
        return
    # registered, so the listener can embed what the variant queues
    await conn.execute(
        "SELECT embedq.register_source($1, $2::regclass, $3::text[], 2)", schema, f"{schema}.courses", COURSE_FIELDS
    )
    if variant != "shipped":
        for (trigger,) in await conn.fetch("SELECT trigger_name FROM embedq._trigger_names($1)", schema):
            await conn.execute(f'DROP TRIGGER "{trigger}" ON {schema}.courses')
        await conn.execute(variant_blocks()[variant].replace("bench_variant", schema))


def backend_cpu(pid: int) -> float:
    """Seconds the backend has spent on a CPU (Linux; NaN elsewhere)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except OSError:
        return float("nan")


async def measured(conn: asyncpg.Connection, run: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(wall seconds, backend CPU seconds) of one call."""
    pid = conn.get_server_pid()
    cpu, start = backend_cpu(pid), time.perf_counter()
    await run()
    return time.perf_counter() - start, backend_cpu(pid) - cpu


async def empty(conn: asyncpg.Connection, variant: str, *, rows: int = 0) -> None:
    """The variant's table holding `rows` rows, nothing queued, a fresh checkpoint."""
    await conn.execute(f"TRUNCATE {table(variant)}")
    if rows:
        await conn.execute(
            f"INSERT INTO {table(variant)} (title, description, category, tags, requirements) "
            "SELECT title, description, 'cat' || (n % 10), ARRAY['t' || (n % 7)], 'none' "
            "FROM bench_rows WHERE n <= $1 ORDER BY n",
            rows,
        )
    await conn.execute("TRUNCATE embedq.jobs, embedq.job_inbox")
    if variant == "unlogged":
        await conn.execute("TRUNCATE bench_unlogged.job_inbox")  # its own inbox
    await conn.execute(f"VACUUM ANALYZE {table(variant)}")
    await conn.execute("CHECKPOINT")


class Wakeups:
    """Counts NOTIFYs on embedq_jobs, delivered to a connection of its own."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.seen: list[str] = []

    async def start(self) -> None:
        await self.conn.add_listener("embedq_jobs", lambda *args: self.seen.append(args[3]))

    async def since_last(self, writer: asyncpg.Connection) -> int:
        """Wake-ups delivered since the last call (a marker flushes the ones in flight)."""
        await writer.execute("SELECT pg_notify('embedq_jobs', 'bench-marker')")
        for _ in range(500):
            if "bench-marker" in self.seen:
                break
            await asyncio.sleep(0.002)
        count = len([p for p in self.seen if p != "bench-marker"])
        self.seen.clear()
        return count


async def autocommit_inserts(dsn: str, variant: str, rows: list[tuple[str, str]], clients: int) -> float:
    """Seconds for `clients` connections to write `rows` between them, one per transaction."""
    conns = [await asyncpg.connect(dsn) for _ in range(clients)]
    share = len(rows) // clients
    try:

        async def client(conn: asyncpg.Connection, part: list[tuple[str, str]]) -> None:
            statement = await conn.prepare(
                f"INSERT INTO {table(variant)} (title, description, category, tags) VALUES ($1, $2, 'bench', '{{a,b}}')"
            )
            for title, description in part:
                await statement.fetch(title, description)

        start = time.perf_counter()
        await asyncio.gather(*(client(c, rows[n * share : (n + 1) * share]) for n, c in enumerate(conns)))
        return time.perf_counter() - start
    finally:
        for conn in conns:
            await conn.close()


class Workloads:
    """One method per workload: it prepares the variant's table (not timed), runs the workload
    once and records what it measured."""

    def __init__(self, conn: asyncpg.Connection, dsn: str, rows: list[tuple[str, str]], args: argparse.Namespace):
        self.conn = conn
        self.dsn = dsn
        self.rows = rows
        self.args = args
        self.wakeups: Wakeups | None = None
        #: figures[measure][variant]: one value per repetition
        self.figures: dict[str, dict[str, list[float]]] = {}

    def record(self, measure: str, variant: str, value: float) -> None:
        self.figures.setdefault(measure, {}).setdefault(variant, []).append(value)

    async def timed(self, measure: str, variant: str, run: Callable[[], Awaitable[object]]) -> None:
        wall, cpu = await measured(self.conn, run)
        self.record(measure, variant, wall)
        self.record(f"{measure}_cpu", variant, cpu)

    async def server(self, variant: str) -> None:
        await empty(self.conn, variant)
        await self.timed(
            "server",
            variant,
            lambda: self.conn.execute(
                "DO $$ DECLARE r record; BEGIN "
                f"FOR r IN SELECT title, description FROM bench_rows WHERE n <= {self.args.rows} ORDER BY n LOOP "
                f"INSERT INTO {table(variant)} (title, description, category, tags) "
                "VALUES (r.title, r.description, 'bench', '{a,b}'); END LOOP; END $$"
            ),
        )

    async def client(self, variant: str) -> None:
        await empty(self.conn, variant)
        statement = await self.conn.prepare(
            f"INSERT INTO {table(variant)} (title, description, category, tags) VALUES ($1, $2, 'bench', '{{a,b}}')"
        )

        async def one_transaction() -> None:
            async with self.conn.transaction():
                for title, description in self.rows[: self.args.client_rows]:
                    await statement.fetch(title, description)

        await self.timed("client", variant, one_transaction)

    async def autocommit(self, variant: str) -> None:
        await empty(self.conn, variant)
        rows = self.rows[: self.args.autocommit_rows]
        self.record("autocommit", variant, await autocommit_inserts(self.dsn, variant, rows, self.args.clients))

    async def bulk(self, variant: str) -> None:
        if self.wakeups is None:
            self.wakeups = Wakeups(await db.connect(self.dsn, "embedq-bench-wakeups"))
            await self.wakeups.start()
        await empty(self.conn, variant)
        await self.wakeups.since_last(self.conn)
        await self.timed(
            "bulk",
            variant,
            lambda: self.conn.execute(
                f"INSERT INTO {table(variant)} (title, description, category, tags, requirements) "
                "SELECT title, description, 'cat' || (n % 10), ARRAY['t' || (n % 7)], 'none' "
                "FROM bench_rows WHERE n <= $1 ORDER BY n",
                self.args.rows,
            ),
        )
        self.record("bulk_wakeups", variant, await self.wakeups.since_last(self.conn))

    async def update(self, variant: str) -> None:
        await empty(self.conn, variant, rows=self.args.rows)
        await self.timed(
            "update",
            variant,
            lambda: self.conn.execute(f"UPDATE {table(variant)} SET description = description || ' (updated)'"),
        )

    async def update_one(self, variant: str) -> None:
        await empty(self.conn, variant, rows=self.args.update_rows)
        first = await self.conn.fetchval(f"SELECT min(id) FROM {table(variant)}")
        await self.timed(
            "update_one",
            variant,
            lambda: self.conn.execute(
                f"DO $$ BEGIN FOR i IN {first}..{first + self.args.update_rows - 1} LOOP "
                f"UPDATE {table(variant)} SET description = description || '!' WHERE id = i; END LOOP; END $$"
            ),
        )

    async def run(self, variants: list[str]) -> dict[str, dict[str, list[float]]]:
        """Each workload --reps times, the variants taking turns in a rotating order, seconds apart."""
        for workload in (self.server, self.client, self.autocommit, self.bulk, self.update, self.update_one):
            for rep in range(self.args.reps):
                shift = rep % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    await workload(variant)
            print(f"{workload.__name__} done", file=sys.stderr, flush=True)
        if self.wakeups is not None:
            await self.wakeups.conn.close()
        return self.figures


async def update_latency(dsn: str, variant: str, samples: int) -> list[float]:
    """Milliseconds from a single-row UPDATE (autocommit) to its job's `done` event."""
    conn = await db.connect(dsn, "embedq-bench")
    events = await db.connect(dsn, "embedq-bench-events")
    done: asyncio.Queue[str] = asyncio.Queue()
    await events.add_listener("embedq_events", lambda *args: done.put_nowait(args[3]))
    await empty(conn, variant, rows=1000)
    first = await conn.fetchval(f"SELECT min(id) FROM {table(variant)}")
    listener = Listener(dsn, HashEmbedder(), Settings.from_env({}, database_url=dsn))  # shipped defaults
    task = asyncio.create_task(listener.run())
    latencies: list[float] = []
    try:
        await listener.ready.wait()
        await asyncio.sleep(0.5)
        for i in range(samples):
            row_id = first + (i * 37) % 1000
            while not done.empty():
                done.get_nowait()
            start = time.perf_counter()
            await conn.execute(f"UPDATE {table(variant)} SET title = $2 WHERE id = $1", row_id, f"edit {i}")
            while True:
                payload = await asyncio.wait_for(done.get(), 30)
                if '"done"' in payload and f'"bench_{variant}", "{row_id}"' in payload:
                    break
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.1)  # the listener goes idle again
    finally:
        listener.stop()
        await task
        await events.close()
        await conn.close()
    return latencies


def line(
    label: str, values: dict[str, list[float]], variants: list[str], *, rate: bool = False, best: bool = False
) -> str:
    """The plain side in seconds, the others as the median of their ratios to plain within a repetition
    (best: as the ratio of the two sides' best repetitions, for CPU times, whose noise only adds)."""
    summary = min if best else statistics.median
    cells = [f"{summary(values['plain']):.3f}s"]
    for variant in variants[1:]:
        if best:
            ratio = min(values[variant]) / min(values["plain"])
        else:
            ratio = statistics.median(v / p for v, p in zip(values[variant], values["plain"], strict=True))
        cells.append(f"{1 / ratio:.2f}" if rate else f"{ratio:.2f}x")
    return f"{label:<46}" + "".join(f"{c:>13}" for c in cells)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--client-rows", type=int, default=2_000)
    parser.add_argument("--autocommit-rows", type=int, default=2_000)
    parser.add_argument("--update-rows", type=int, default=2_000, help="single-row UPDATEs in one transaction")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--variants", default="before,row,shipped")
    parser.add_argument("--latency", type=int, default=40, help="update -> vector samples per variant (0: none)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    variants = ["plain", *[v for v in args.variants.split(",") if v and v != "plain"]]
    unknown = set(variants) - {"plain", "shipped", *variant_blocks()}
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")

    with scratch_database() as dsn:
        conn = await db.connect(dsn, "embedq-bench")
        await conn.execute(
            "CREATE TABLE bench_rows AS SELECT g AS n, format('Course %s: %s %s', g, w[1 + (g * 7) % $2], "
            "w[1 + (g * 13) % $2]) AS title, (SELECT string_agg(w[1 + (g * 31 + k * 17) % $2], ' ') "
            "FROM generate_series(1, 40 + g % 41) k) AS description "
            "FROM generate_series(1, $3) g, (SELECT $1::text[] AS w) words",
            VOCABULARY.split(),
            len(VOCABULARY.split()),
            max(args.rows, args.client_rows, args.autocommit_rows, args.update_rows, 1000),
        )
        rows = [tuple(r) for r in await conn.fetch("SELECT title, description FROM bench_rows ORDER BY n")]
        for variant in variants:
            await create_variant(conn, variant)
        figures = await Workloads(conn, dsn, rows, args).run(variants)
        latencies = {
            variant: await update_latency(dsn, variant, args.latency)
            for variant in variants
            if args.latency and variant in EMBEDDED
        }
        await conn.close()

    print(f"\nmedian of {args.reps} repetitions; ratios to the same table without triggers (plain)")
    print(f"{'':<46}" + "".join(f"{v:>13}" for v in variants))
    target = "   target "
    print(line(f"{args.rows:,} single-row INSERTs, 1 tx, server", figures["server"], variants) + target + "<= 1.3x")
    print(line("  (backend cpu, best repetitions)", figures["server_cpu"], variants, best=True))
    print(line(f"{args.client_rows:,} single-row INSERTs, 1 tx, client", figures["client"], variants))
    print(line("  (backend cpu, best repetitions)", figures["client_cpu"], variants, best=True))
    print(
        line(f"autocommit INSERTs, {args.clients} clients: rate", figures["autocommit"], variants, rate=True)
        + target
        + ">= 0.85"
    )
    print(line(f"one {args.rows:,}-row INSERT ... SELECT", figures["bulk"], variants) + target + "<= 1.1x")
    print(line("  (backend cpu, best repetitions)", figures["bulk_cpu"], variants, best=True))
    wakeups = "".join(f"{int(max(figures['bulk_wakeups'][v])):>13}" for v in variants[1:])
    print(f"{'  wake-ups it sent (most in a repetition)':<46}{'-':>13}" + wakeups + target + "1")
    print(line(f"one UPDATE of all {args.rows:,} rows", figures["update"], variants) + target + "<= 1.5x")
    print(line("  (backend cpu, best repetitions)", figures["update_cpu"], variants, best=True))
    print(line(f"{args.update_rows:,} single-row UPDATEs, 1 tx, server", figures["update_one"], variants))
    print(line("  (backend cpu, best repetitions)", figures["update_one_cpu"], variants, best=True))
    for variant, values in latencies.items():
        values.sort()
        print(
            f"update -> vector, idle listener, {variant}: p50 {statistics.median(values):.1f} ms, "
            f"p90 {values[int(len(values) * 0.9)]:.1f} ms ({len(values)} updates)" + target + "p50 <= 20 ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
