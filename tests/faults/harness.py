"""Run embedq as its users do, as real processes, and break it on purpose.

    harness = make_harness(dsn, provider_url=provider.base_url, **qstash.env)  # the fixture
    webhook = await harness.webhook(port)          # `embedq serve --port P`, once /healthz is 200
    listener = await harness.listener()            # `embedq listen`, once it logged its start
    listener.kill()                                # kill -9
    listener = await harness.restart(listener)     # same command, same environment
    await settle(conn, harness, timeout=120)       # every job done or dead
    await assert_consistent(conn, harness)         # `embedq verify --json` + SQL checks

Each process writes its stdout and stderr (JSON log lines) to files in its log directory;
`tails()` shows the end of each in the report of a failed test, and the fixture kills every
process the test started, whatever happened.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from embedq import db
from tests.fakes.openai_server import FakeOpenAIServer
from tests.http_server import free_port

MODEL = "text-embedding-3-small"
DIMENSIONS = 8
#: short leases, so the jobs of a killed worker come back in seconds, not minutes
LEASE_SECONDS = 2.0
#: how often the listener's rescuer looks for expired leases (EMBEDQ_RESCUE_INTERVAL)
RESCUE_INTERVAL = 1.0
STARTUP_SECONDS = 60.0
UNFINISHED = ("pending", "failed", "processing", "dispatched")

Condition = Callable[[], Awaitable[bool]]


async def wait_until(
    condition: Condition, timeout: float, describe: Callable[[], Awaitable[str]] | None = None, interval: float = 0.1
) -> float:
    """Poll `condition` until it holds; returns the seconds it took. AssertionError at the deadline."""
    started = time.monotonic()
    while True:
        if await condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            detail = f": {await describe()}" if describe else ""
            raise AssertionError(f"condition not met within {timeout:.0f} s{detail}")
        await asyncio.sleep(interval)


# -- the provider --------------------------------------------------------------------------


@dataclass
class TimedFakeOpenAIServer(FakeOpenAIServer):
    """The fake provider, also noting when each request arrived (to check Retry-After waits)."""

    arrived_at: list[float] = field(default_factory=list)

    async def _embeddings(self, request: Request) -> Response:
        self.arrived_at.append(time.monotonic())
        return await super()._embeddings(request)

    def retry_gaps(self) -> list[tuple[float, float]]:
        """(seconds waited, Retry-After asked) for every SDK retry of a request answered with an error."""
        gaps = []
        last_failure: dict[str, tuple[float, float]] = {}
        for seen, arrived in zip(self.seen, self.arrived_at, strict=True):
            key = json.dumps(seen.body.get("input"))
            if int(seen.headers.get("x-stainless-retry-count", "0")) > 0 and key in last_failure:
                failed_at, asked = last_failure.pop(key)
                gaps.append((arrived - failed_at, asked))
            if seen.status >= 400 and self.failure_retry_after:
                last_failure[key] = (arrived, self.failure_retry_after)
        return gaps


# -- processes -----------------------------------------------------------------------------


class EmbedqProcess:
    """One `python -m embedq ...` subprocess with its output in files."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path, port: int | None = None) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.port = port  # a webhook's
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        self.popen: subprocess.Popen | None = None
        #: stopped on purpose by the test (as opposed to dying of the fault)
        self.stopped = False

    def start(self) -> EmbedqProcess:
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "embedq", *self.args],
                env=self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """kill -9: no clean-up, no finished batch, leases left behind."""
        self.stopped = True
        if self.alive:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def log_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def log_events(self, action: str | None = None, level: str | None = None) -> list[dict]:
        """The JSON log lines with this `action` and `level` (None: any)."""
        events = []
        for line in self.log_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if (action is None or event.get("action") == action) and (level is None or event.get("level") == level):
                events.append(event)
        return events

    def tail(self, lines: int = 25) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts)


class Harness:
    """Every embedq process of one test: started with a shared environment, killed at the end."""

    def __init__(self, dsn: str, log_dir: Path, *, provider_url: str, **env: str) -> None:
        self.dsn = dsn
        self.log_dir = log_dir
        self.env = (
            clean_environment()
            | {
                "DATABASE_URL": dsn,
                "EMBEDQ_PROVIDER": "openai",
                "OPENAI_BASE_URL": provider_url,
                "EMBEDQ_MODEL": MODEL,
                "EMBEDQ_DIMENSIONS": str(DIMENSIONS),
                "EMBEDQ_LOG_FORMAT": "json",
                "EMBEDQ_POLL_INTERVAL": "0.5",
                "EMBEDQ_LEASE_SECONDS": str(LEASE_SECONDS),
                "EMBEDQ_RESCUE_INTERVAL": str(RESCUE_INTERVAL),
                "EMBEDQ_BATCH_WINDOW_MS": "0",
                "EMBEDQ_BREAKER_COOLDOWN": "1",
                "EMBEDQ_OPENAI_BATCH_SIZE": "64",
            }
            | env
        )
        self.processes: list[EmbedqProcess] = []
        self._numbers = itertools.count(1)

    def _process(self, role: str, args: list[str], env: dict[str, str], port: int | None = None) -> EmbedqProcess:
        process = EmbedqProcess(f"{role}-{next(self._numbers)}", args, self.env | env, self.log_dir, port)
        self.processes.append(process)
        return process.start()

    async def listener(self, **env: str) -> EmbedqProcess:
        """`embedq listen`, once it has announced that it started."""
        process = self._process("listener", ["listen"], env)
        await self.wait_started(process)
        return process

    async def webhook(self, port: int | None = None, **env: str) -> EmbedqProcess:
        """`embedq serve --port P`, once GET /healthz answers 200. EMBEDQ_WEBHOOK_URL defaults
        to its own /v1/jobs (pass one for a webhook behind a proxy)."""
        port = port or free_port()
        env = {"EMBEDQ_WEBHOOK_URL": f"http://127.0.0.1:{port}/v1/jobs", **env}
        process = self._process("webhook", ["serve", "--port", str(port)], env, port)
        await self.wait_healthy(process)
        return process

    async def up(self, port: int | None = None, **env: str) -> EmbedqProcess:
        """`embedq up --port P` (listener, webhook and schedules), once GET /healthz answers 200."""
        port = port or free_port()
        env = {"EMBEDQ_WEBHOOK_URL": f"http://127.0.0.1:{port}/v1/jobs", **env}
        process = self._process("up", ["up", "--port", str(port)], env, port)
        await self.wait_healthy(process)
        return process

    async def restart(self, process: EmbedqProcess) -> EmbedqProcess:
        """The same command and environment again, as a supervisor would restart it."""
        process.kill()
        again = self._process(
            process.name.rsplit("-", 1)[0],
            process.args,
            {k: v for k, v in process.env.items() if self.env.get(k) != v},
            process.port,
        )
        if again.port is not None:
            await self.wait_healthy(again)
        else:
            await self.wait_started(again)
        return again

    async def wait_started(self, process: EmbedqProcess) -> None:
        async def started() -> bool:
            if not process.alive:
                raise AssertionError(f"{process.name} exited with {process.popen.returncode}\n{process.tail()}")
            return bool(process.log_events("start"))

        await wait_until(started, STARTUP_SECONDS, interval=0.05)

    async def wait_healthy(self, process: EmbedqProcess) -> float:
        url = f"http://127.0.0.1:{process.port}/healthz"
        async with httpx.AsyncClient(timeout=2) as http:

            async def healthy() -> bool:
                if not process.alive:
                    raise AssertionError(f"{process.name} exited with {process.popen.returncode}\n{process.tail()}")
                try:
                    return (await http.get(url)).status_code == 200
                except httpx.HTTPError:
                    return False

            return await wait_until(healthy, STARTUP_SECONDS, interval=0.05)

    async def cli(self, *args: str) -> subprocess.CompletedProcess:
        """One `embedq ...` command with the harness's environment."""
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "embedq", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    async def verify(self) -> dict:
        """`embedq verify --json`, as an operator's cron job runs it."""
        completed = await self.cli("verify", "--json")
        assert completed.returncode in (0, 1), completed.stderr
        report = json.loads(completed.stdout)
        report["exit_code"] = completed.returncode
        return report

    def assert_running(self) -> None:
        """Every process the test did not kill itself is still running (none died of the fault)."""
        exited = [p for p in self.processes if not p.stopped and not p.alive]
        assert not exited, "exited by themselves: " + "\n".join(
            f"{p.name} ({p.popen.returncode})\n{p.tail()}" for p in exited
        )

    def tails(self) -> str:
        return "\n\n".join(f"=== {p.name} ({'running' if p.alive else 'exited'})\n{p.tail()}" for p in self.processes)

    def kill_all(self) -> None:
        for process in self.processes:
            process.kill()


def clean_environment() -> dict[str, str]:
    """The test runner's environment without any embedq, QStash or OpenAI setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}


# -- the application's writes --------------------------------------------------------------

WORDS = [
    "garden",
    "soil",
    "tomato",
    "bread",
    "oven",
    "flour",
    "yeast",
    "guitar",
    "chord",
    "melody",
    "river",
    "boat",
    "paddle",
    "sql",
    "index",
    "query",
    "planner",
    "join",
    "mountain",
    "trail",
    "boots",
    "camera",
    "lens",
    "light",
    "shadow",
    "coffee",
    "grinder",
    "roast",
    "piano",
    "scale",
    "tempo",
    "python",
    "async",
    "loop",
    "kernel",
    "memory",
    "cache",
    "yoga",
    "breath",
    "stretch",
]


def post_text(rng: random.Random, number: int) -> tuple[str, str]:
    """A post's title and body; one in twenty is long enough for several chunks."""
    words = rng.randint(300, 900) if rng.random() < 0.05 else rng.randint(8, 40)
    return f"post {number}: {rng.choice(WORDS)} {rng.choice(WORDS)}", " ".join(rng.choices(WORDS, k=words))


async def insert_posts(conn: asyncpg.Connection, rng: random.Random, count: int, first_number: int = 1) -> list[int]:
    rows = [post_text(rng, first_number + i) for i in range(count)]
    records = await conn.fetch(
        "INSERT INTO embedq_sample.posts (title, body) SELECT * FROM unnest($1::text[], $2::text[]) RETURNING id",
        [r[0] for r in rows],
        [r[1] for r in rows],
    )
    return [r["id"] for r in records]


async def write_load(
    dsn: str, rng: random.Random, rows: int, *, per_statement: int = 25, pause: float = 0.02
) -> list[int]:
    """Insert `rows` posts, a few per statement, on a connection of its own, as an application
    under load would."""
    conn = await db.connect(dsn, "faults-app")
    try:
        ids: list[int] = []
        while len(ids) < rows:
            ids += await insert_posts(conn, rng, min(per_statement, rows - len(ids)), len(ids) + 1)
            await asyncio.sleep(pause)
        return ids
    finally:
        await conn.close()


# -- what the database says ----------------------------------------------------------------


async def job_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status::text, count(*) FROM embedq.jobs GROUP BY 1")
    counts = {r[0]: r[1] for r in rows}
    counts["inbox"] = await conn.fetchval("SELECT count(*) FROM embedq.job_inbox")
    return counts


async def unfinished(conn: asyncpg.Connection) -> int:
    counts = await job_counts(conn)
    return counts["inbox"] + sum(counts.get(s, 0) for s in UNFINISHED)


async def settle(conn: asyncpg.Connection, harness: Harness, timeout: float) -> float:
    """Wait until every job has ended (done or dead) and nothing waits in the inbox."""

    async def nothing_left() -> bool:
        return await unfinished(conn) == 0

    async def describe() -> str:
        stuck = await conn.fetch(
            "SELECT id, status::text, attempts, locked_by, message_id, lease_expires_at, "
            "last_error FROM embedq.jobs WHERE status IN ('pending', 'failed', 'processing', "
            "'dispatched') ORDER BY id LIMIT 5"
        )
        return f"jobs {await job_counts(conn)}; e.g. {[dict(r) for r in stuck]}\n{harness.tails()}"

    return await wait_until(nothing_left, timeout, describe, interval=0.2)


DUPLICATE_OR_GAPPED_VECTORS = """
SELECT content_type, source_id, model, count(*) AS vectors, count(DISTINCT chunk_index) AS chunks,
       max(chunk_index) + 1 AS expected
FROM embedq.embeddings
GROUP BY content_type, source_id, model
HAVING count(*) <> count(DISTINCT chunk_index) OR count(*) <> max(chunk_index) + 1
LIMIT 10
"""


async def assert_consistent(conn: asyncpg.Connection, harness: Harness, *, dead: int = 0) -> dict:
    """What every scenario must end with: `embedq verify --json` finds no drift and nothing in
    flight, no row has duplicate (or missing middle) vectors, every vector belongs to its text, no
    job is left in processing or dispatched, no job is dead (except `dead` deliberate poison
    jobs), and no embedq process died of the fault."""
    harness.assert_running()
    report = await harness.verify()
    drifting = {
        t: {k: d[k][:5] for k in ("missing", "stale", "orphaned") if d[k]}
        for t, d in report["types"].items()
        if d["drift"]
    }
    if report["drift"] or report["exit_code"]:
        examples = [(t, source_id) for t, d in drifting.items() for ids in d.values() for source_id in ids][:5]
        jobs = await conn.fetch(
            "SELECT id, content_type, source_id, op::text, status::text, attempts, message_id, "
            "locked_by, last_error, created_at, finished_at FROM embedq.jobs "
            "WHERE (content_type, source_id) IN (SELECT * FROM unnest($1::text[], $2::text[])) "
            "ORDER BY id",
            [t for t, _ in examples],
            [i for _, i in examples],
        )
        raise AssertionError(f"verify found drift: {drifting}; their jobs: {[dict(j) for j in jobs]}")
    in_flight = {t: d["in_flight"] for t, d in report["types"].items() if d["in_flight"]}
    assert not in_flight, f"verify found rows still in flight: {in_flight}"
    duplicates = await conn.fetch(DUPLICATE_OR_GAPPED_VECTORS)
    assert not duplicates, f"duplicate or gapped vectors: {[dict(r) for r in duplicates]}"
    models = await conn.fetch("SELECT DISTINCT model FROM embedq.embeddings")
    assert [r[0] for r in models] in ([MODEL], []), models
    counts = await job_counts(conn)
    assert counts.get("processing", 0) == 0 and counts.get("dispatched", 0) == 0, counts
    dead_jobs = await conn.fetch(
        "SELECT id, source_id, attempts, last_error FROM embedq.jobs WHERE status = 'dead' LIMIT 5"
    )
    assert counts.get("dead", 0) == dead, f"{counts.get('dead', 0)} dead jobs: {[dict(r) for r in dead_jobs]}"
    report["vectors_checked"] = await assert_vectors_match_text(conn)
    return report


async def assert_vectors_match_text(conn: asyncpg.Connection) -> int:
    """Every stored vector is the provider's vector of the chunk stored beside it (the fake's
    vectors are a function of the text), and that chunk is the one its hash names (the hash
    `embedq verify` compared with the row): no vector was written for another row's text."""
    import numpy as np

    from embedq.processing import content_hash
    from tests.fakes.openai_server import fake_vector

    mismatched, checked = [], 0
    async with conn.transaction():
        async for record in conn.cursor(
            "SELECT content_type, source_id, chunk_index, content, content_hash, "
            "embedding::text AS embedding FROM embedq.embeddings"
        ):
            stored = np.array(json.loads(record["embedding"]), dtype=np.float32)
            if record["content_hash"] != content_hash(MODEL, record["content"]) or not np.allclose(
                stored, fake_vector(record["content"], DIMENSIONS), atol=1e-6
            ):
                mismatched.append((record["content_type"], record["source_id"], record["chunk_index"]))
            checked += 1
    assert not mismatched, f"{len(mismatched)} vectors do not belong to their text, e.g. {mismatched[:5]}"
    return checked


class LeaseWatch:
    """Samples, while the scenario runs, how long past its lease a job has stayed in processing
    or dispatched (the rescuer should return it)."""

    def __init__(self, dsn: str, interval: float = 0.25) -> None:
        self.dsn = dsn
        self.interval = interval
        self.max_overdue = 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        conn = await db.connect(self.dsn, "faults-lease-watch")
        try:
            await self._watch(conn)
        finally:
            await conn.close()

    async def _watch(self, conn: asyncpg.Connection) -> None:
        while True:
            overdue = await conn.fetchval(
                "SELECT coalesce(extract(epoch FROM max(now() - lease_expires_at)), 0)::float8 "
                "FROM embedq.jobs WHERE status IN ('processing', 'dispatched')"
            )
            self.max_overdue = max(self.max_overdue, overdue)
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> LeaseWatch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


# -- a load balancer for webhook replicas --------------------------------------------------


class RoundRobinProxy:
    """An HTTP load balancer in front of webhook replicas: each request goes to the next one,
    body and headers untouched (the signature covers the body and names the public URL)."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self._next = itertools.cycle(range(len(upstreams)))
        self._http = httpx.AsyncClient(timeout=120)
        self.forwarded = [0] * len(upstreams)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST"])])

    async def _forward(self, request: Request) -> Response:
        index = next(self._next)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        try:
            answer = await self._http.request(
                request.method,
                self.upstreams[index] + request.url.path,
                content=await request.body(),
                headers=headers,
                params=request.query_params,
            )
        except httpx.HTTPError as exc:
            return Response(f"bad gateway: {exc}", status_code=502)
        self.forwarded[index] += 1
        passed = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
        }
        return Response(answer.content, status_code=answer.status_code, headers=passed)

    async def aclose(self) -> None:
        await self._http.aclose()
