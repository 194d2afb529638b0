"""Rows per second through `embedq listen` with the openai provider, as a user runs it.

    python bench/throughput.py [--rows 10000] [--latencies 0,100] [--profile]

A backlog of course rows (a title and 40-80 words each) is written first; then `embedq listen` is
started as a process against a local OpenAI-compatible server (tests/fakes/openai_server.py, in
this process) and timed from its start to the last vector. Configurations side by side in one run:
the shipped defaults (only EMBEDQ_PROVIDER=openai and the server's address set) and a hand-tuned
one. `--profile` runs the listener under py-spy (if installed) and prints its top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._support import scratch_database
from embedq import db
from tests.fakes.openai_server import FakeOpenAIServer

WORDS = (
    "bread oven flour yeast knead dough proof crust crumb starter fold shape bake cool slice butter salt "
    "water temperature hydration gluten rye wheat spelt sourdough loaf tin steam scoring timing rise"
).split()

#: per run: CPU seconds of the listener, of PostgreSQL, of this process (the provider)
CPU_USE: list[tuple[float, float, float]] = []

CONFIGURATIONS = {
    "shipped defaults": {},
    "tuned (EMBEDQ_BATCH_SIZE=500 EMBEDQ_CONCURRENCY=2)": {"EMBEDQ_BATCH_SIZE": "500", "EMBEDQ_CONCURRENCY": "2"},
}


async def write_backlog(dsn: str, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    conn = await db.connect(dsn, "embedq-bench")
    try:
        await conn.execute(
            "TRUNCATE embedq_sample.courses, embedq_sample.lessons, embedq.jobs, embedq.job_inbox, "
            "embedq.embeddings RESTART IDENTITY CASCADE"
        )
        for (index,) in await conn.fetch("SELECT embedq._model_index_name(name) FROM embedq.models"):
            await conn.execute(f'DROP INDEX IF EXISTS embedq."{index}"')
        await conn.execute("DELETE FROM embedq.models")
        titles = [f"Course {i}: {' '.join(rng.choices(WORDS, k=4))}" for i in range(rows)]
        descriptions = [" ".join(rng.choices(WORDS, k=rng.randint(40, 80))) for _ in range(rows)]
        await conn.execute(
            "INSERT INTO embedq_sample.courses (title, description) SELECT * FROM unnest($1::text[], $2::text[])",
            titles,
            descriptions,
        )
    finally:
        await conn.close()


async def timed_listener(
    dsn: str, server: FakeOpenAIServer, rows: int, extra_env: dict[str, str], profile_to: Path | None
) -> tuple[float, float]:
    """(seconds from process start to the last vector, seconds to the first vector)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env.update(
        DATABASE_URL=dsn,
        EMBEDQ_PROVIDER="openai",
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY="bench",
        EMBEDQ_LOG_LEVEL="warning",
        **extra_env,
    )
    command = [sys.executable, "-m", "embedq", "listen"]
    if profile_to is not None:
        command = [
            shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--format",
            "raw",
            "-o",
            str(profile_to),
            "--rate",
            "200",
            "--subprocesses",
            "--",
            *command,
        ]
    conn = await db.connect(dsn, "embedq-bench")
    cpu_before = (cpu_seconds(server_pids(dsn)), cpu_seconds([os.getpid()]))
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    try:
        while True:
            done = await conn.fetchval("SELECT count(*) FROM embedq.embeddings")
            if done and first is None:
                first = time.perf_counter() - started
            if done >= rows:
                CPU_USE.append(
                    (
                        cpu_seconds([process.pid]),
                        cpu_seconds(server_pids(dsn)) - cpu_before[0],
                        cpu_seconds([os.getpid()]) - cpu_before[1],
                    )
                )
                break
            if process.poll() is not None:
                raise RuntimeError(f"the listener exited: {process.stderr.read().decode()[-2000:]}")
            await asyncio.sleep(0.02)
        return time.perf_counter() - started, first or 0.0
    finally:
        process.send_signal(signal.SIGINT if profile_to is not None else signal.SIGTERM)
        process.wait(timeout=120)
        await conn.close()


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (Linux /proc), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def server_pids(dsn: str) -> list[int]:
    """The benchmark's PostgreSQL processes: the postmaster whose command line names the socket
    directory of `dsn`, and its children (backends, WAL writer, ...)."""
    socket_dir = parse_qs(urlsplit(dsn).query).get("host", [""])[0]
    parents: dict[int, int] = {}
    postmaster = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if socket_dir and socket_dir in (entry / "cmdline").read_text():
                postmaster = int(entry.name)
        except OSError:
            continue
    return [pid for pid, parent in parents.items() if postmaster in (pid, parent)]


def top_functions(raw_profile: Path, limit: int = 25) -> list[str]:
    """py-spy's raw (folded) stacks -> the functions with the most samples: own time, then
    inclusive time of embedq's own functions (what each stage of the pipeline costs)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "_find_and_load" in stack:
            continue  # start-up imports: they are the time to the first vector
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for frame in {
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0] + ")"
            for f in frames
            if "embedq/" in f or "listener/" in f
        }:
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    ranked = sorted(own.items(), key=lambda item: -item[1])[:limit]
    lines = [f"{100 * n / total:5.1f}%  {frame}" for frame, n in ranked]
    lines.append("inclusive, embedq's functions:")
    ranked = sorted(inclusive.items(), key=lambda item: -item[1])[:limit]
    return lines + [f"{100 * n / total:5.1f}%  {frame}" for frame, n in ranked]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latencies", default="0,100", help="milliseconds per provider request")
    parser.add_argument("--dimensions", type=int, default=1536, help="the server's vector size (default model's)")
    parser.add_argument("--only", help="run only the configurations whose name starts with this")
    parser.add_argument(
        "--try",
        dest="tries",
        action="append",
        default=[],
        help="another configuration: VAR=VALUE,VAR=VALUE (repeatable)",
    )
    parser.add_argument("--sql", action="append", default=[], help="SQL run on the database first (experiments)")
    parser.add_argument("--profile", action="store_true", help="profile the listener with py-spy")
    args = parser.parse_args()
    latencies = [float(ms) / 1000 for ms in args.latencies.split(",")]
    configurations = {n: e for n, e in CONFIGURATIONS.items() if not args.only or n.startswith(args.only)}
    for tried in args.tries:
        configurations[tried] = dict(pair.split("=", 1) for pair in tried.split(","))

    results: dict[tuple[str, float], tuple[float, float]] = {}
    profiles: dict[tuple[str, float], list[str]] = {}
    with scratch_database() as dsn:
        for statement in args.sql:
            conn = await db.connect(dsn, "embedq-bench")
            await conn.execute(statement)
            await conn.close()
        async with FakeOpenAIServer(dimensions=args.dimensions) as server:
            for latency in latencies:
                server.latency = latency
                for name, extra_env in configurations.items():
                    await write_backlog(dsn, args.rows)
                    profile_to = Path(tempfile.mkdtemp(prefix="eq-prof-")) / "listener.txt" if args.profile else None
                    results[(name, latency)] = await timed_listener(dsn, server, args.rows, extra_env, profile_to)
                    if profile_to is not None and profile_to.exists():
                        profiles[(name, latency)] = top_functions(profile_to)

    print(
        f"\n`embedq listen`, openai provider against a local server, {args.rows:,} course rows "
        f"({args.dimensions} dimensions), timed from the process start to the last vector\n"
    )
    header = "| configuration | " + " | ".join(f"rows/s at {latency * 1000:.0f} ms" for latency in latencies)
    print(header + " | start -> first vector | rows/s after the first vector |")
    print("|---|" + "---|" * (len(latencies) + 2))
    for name in configurations:
        cells = [f"{args.rows / results[(name, latency)][0]:,.0f}" for latency in latencies]
        total, first = results[(name, latencies[0])]
        print(f"| {name} | " + " | ".join(cells) + f" | {first:.2f} s | {args.rows / (total - first):,.0f} |")
    print("\ntargets (shipped defaults): >= 2,500 rows/s at 0 ms, >= 2,000 rows/s at 100 ms")
    print(
        "CPU seconds per run (listener / PostgreSQL / provider and this benchmark): "
        + ", ".join(f"{a:.1f}/{b:.1f}/{c:.1f}" for a, b, c in CPU_USE)
    )
    for (name, latency), lines in profiles.items():
        print(f"\nprofile: {name}, {latency * 1000:.0f} ms (own time, all threads)")
        print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
