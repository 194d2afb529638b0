"""Scenario 8: secrets stay secret, in every process and on every channel.

The real processes (`embedq up`, or `embedq listen` + `embedq serve`) run with distinctive
values for every secret embedq is given (QStash token and signing keys, the OpenAI key, the admin
and API tokens, the database password), DEBUG logging in both formats, and real traffic through
the QStash-compatible server and the fake OpenAI provider, failures included: forged and
misdirected signatures, provider errors (transient, permanent, a rejected key), a QStash outage, a
message QStash gives up on, wrong admin and API tokens, CLI runs, and CLI errors on a database URL
with a password. None of the secret values may appear in anything captured: every process's
stdout and stderr, every CLI's output, embedq.jobs.last_error, /metrics, /v1/status, the admin
API, the dashboard, the webhook's answers, or what embedq handed QStash to carry.

(tests/e2e/test_qstash_delivery.py::test_secrets_never_reach_the_logs checks the in-process logs
of the listener for the QStash secrets; this is the all-process, all-channel version.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psycopg
import pytest

from tests.fakes.openai_server import FakeOpenAIServer
from tests.http_server import free_port
from tests.qstash_server import QStashServer, sign

MODEL = "text-embedding-3-small"
DIMENSIONS = 8
STARTUP_SECONDS = 90.0
SETTLE_SECONDS = 90.0
UNFINISHED = ("pending", "failed", "processing", "dispatched")


@dataclass(frozen=True)
class Secrets:
    """One distinctive value per secret; `SECRET` + a random tag makes an accidental match impossible."""

    qstash_token: str
    current_signing_key: str
    next_signing_key: str
    openai_api_key: str
    admin_token: str
    api_token: str
    database_password: str

    @classmethod
    def fresh(cls) -> Secrets:
        tag = secrets.token_hex(6)
        return cls(
            qstash_token=f"qstashTokenSECRET{tag}eyJVc2VySUQiOiJ0ZXN0In0",
            current_signing_key=f"sig_CurrentSECRET{tag}abcdefghij",
            next_signing_key=f"sig_NextSECRET{tag}klmnopqrstuvw",
            openai_api_key=f"sk-proj-OpenAISECRET{tag}xyz",
            admin_token=f"adminTokenSECRET{tag}",
            api_token=f"apiTokenSECRET{tag}",
            database_password=f"pgPasswordSECRET{tag}",
        )

    def named(self) -> dict[str, str]:
        return dict(vars(self))

    def found_in(self, text: str) -> list[str]:
        """The names of the secrets whose value (or its distinctive middle) appears in `text`."""
        found = []
        for name, value in self.named().items():
            middle = value[len(value) // 4 : -len(value) // 4]  # a key cut at either end still leaks
            if value in text or middle in text:
                found.append(name)
        return found


@dataclass
class Process:
    name: str
    args: list[str]
    popen: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Run:
    """Everything one scenario run captured, channel by channel."""

    secrets: Secrets
    env: dict[str, str]
    log_dir: Path
    processes: list[Process] = field(default_factory=list)
    captured: dict[str, str] = field(default_factory=dict)

    def start(self, name: str, *args: str, **env: str) -> Process:
        log = self.log_dir / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            [sys.executable, "-m", "embedq", *args],
            env={**self.env, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        handle.close()
        process = Process(name, list(args), popen, log)
        self.processes.append(process)
        return process

    async def cli(self, name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        """`embedq ARGS` to the end, in a thread: the fake servers it calls share this event loop."""
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "embedq", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        self.capture(f"cli {name} (exit {result.returncode})", result.stdout + result.stderr)
        return result

    def capture(self, channel: str, text: str) -> None:
        self.captured[channel] = self.captured.get(channel, "") + text

    def stop_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        for process in self.processes:
            self.capture(f"process {process.name} ({' '.join(process.args)})", process.output())

    def kill_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait()


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    describe: Callable[[], Awaitable[object]] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            detail = f": {await describe()}" if describe else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s{detail}")
        await asyncio.sleep(0.1)


async def job_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT status::text, count(*) FROM embedq.jobs GROUP BY 1")
    inbox = await conn.fetchval("SELECT count(*) FROM embedq.job_inbox")
    return {**{r[0]: r[1] for r in rows}, "inbox": inbox}


async def settled(conn: asyncpg.Connection) -> bool:
    counts = await job_counts(conn)
    return counts["inbox"] == 0 and not any(counts.get(s) for s in UNFINISHED) and sum(counts.values()) > 0


@contextlib.asynccontextmanager
async def database_role_with_password(dsn: str, password: str) -> AsyncIterator[str]:
    """A login role with a password, and a DATABASE_URL that carries it."""
    role = f"embedq_secret_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    try:
        user = dsn.split("://", 1)[1].split("@", 1)[0]
        yield dsn.replace(f"://{user}@", f"://{role}:{password}@", 1)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
            admin.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def clean_environment() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_")) and k != "DATABASE_URL"
    }


TOPOLOGIES = {
    "embedq up, JSON logs": "json",
    "embedq listen + embedq serve, human logs": "human",
}


@pytest.mark.parametrize("topology", list(TOPOLOGIES))
async def test_no_secret_reaches_any_output(dsn, conn, tmp_path, topology):
    values = Secrets.fresh()
    async with (
        database_role_with_password(dsn, values.database_password) as secret_dsn,
        QStashServer(
            token=values.qstash_token,
            current_signing_key=values.current_signing_key,
            next_signing_key=values.next_signing_key,
            time_scale=0.001,
        ) as qstash,
        FakeOpenAIServer(dimensions=DIMENSIONS, api_key=values.openai_api_key) as provider,
        httpx.AsyncClient(timeout=30) as http,
    ):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **clean_environment(),
            **qstash.env,
            "DATABASE_URL": secret_dsn,
            "EMBEDQ_WEBHOOK_URL": f"{base}/v1/jobs",
            "EMBEDQ_PROVIDER": "openai",
            "OPENAI_API_KEY": values.openai_api_key,
            "OPENAI_BASE_URL": provider.base_url,
            "EMBEDQ_MODEL": MODEL,
            "EMBEDQ_DIMENSIONS": str(DIMENSIONS),
            "EMBEDQ_ADMIN_TOKEN": values.admin_token,
            "EMBEDQ_API_TOKEN": values.api_token,
            "EMBEDQ_LOG_LEVEL": "DEBUG",
            "EMBEDQ_LOG_FORMAT": TOPOLOGIES[topology],
            "EMBEDQ_POLL_INTERVAL": "0.3",
            "EMBEDQ_BATCH_WINDOW_MS": "0",
            "EMBEDQ_BREAKER_FAILURES": "1",
            "EMBEDQ_BREAKER_COOLDOWN": "1",
            "EMBEDQ_OPENAI_MAX_RETRIES": "0",
            "EMBEDQ_QSTASH_RETRIES": "1",
            "EMBEDQ_MAX_ATTEMPTS": "3",
            "EMBEDQ_DISPATCH_TIMEOUT": "5",
        }
        run = Run(values, env, tmp_path)
        listener_metrics_port = None
        try:
            if topology.startswith("embedq up"):
                run.start("up", "up", "--port", str(port))
            else:
                listener_metrics_port = free_port()
                run.start("serve", "serve", "--port", str(port))
                run.start("listen", "listen", EMBEDQ_METRICS_PORT=str(listener_metrics_port))
            await wait_healthy(http, base, run)

            await drive_traffic(run, conn, qstash, provider, http, base)
            await capture_read_channels(run, conn, qstash, http, base, listener_metrics_port)
            await run_cli_commands(
                run, conn_dead_job_id=await conn.fetchval("SELECT min(id) FROM embedq.jobs WHERE status = 'dead'")
            )
        finally:
            run.stop_all()
            run.kill_all()

    leaks = {channel: found for channel, text in run.captured.items() if (found := values.found_in(text))}
    assert leaks == {}, "secrets leaked: " + "; ".join(
        f"{channel}: {', '.join(names)}" for channel, names in leaks.items()
    )
    everything = "\n".join(run.captured.values())
    # the failure paths did run, and said so, without the secrets
    for evidence in (
        "rejected delivery",
        "invalid signature",
        "wrong admin token",
        "QStash could not deliver a message",
        "Incorrect API key provided",
        "publish failed",
    ):
        assert evidence in everything, f"{evidence!r} never appeared: that failure path did not run"


async def wait_healthy(http: httpx.AsyncClient, base: str, run: Run) -> None:
    async def healthy() -> bool:
        for process in run.processes:
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited early: {process.output()[-2000:]}")
        try:
            return (await http.get(f"{base}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_until(healthy, STARTUP_SECONDS, "the webhook answers /healthz")


async def drive_traffic(
    run: Run,
    conn: asyncpg.Connection,
    qstash: QStashServer,
    provider: FakeOpenAIServer,
    http: httpx.AsyncClient,
    base: str,
) -> None:
    values = run.secrets

    async def describe():
        unfinished = await conn.fetch(
            "SELECT id, status::text, message_id, attempts, last_error FROM embedq.jobs "
            "WHERE status <> 'done' ORDER BY id"
        )
        return {
            "jobs": await job_counts(conn),
            "not done": [tuple(r) for r in unfinished],
            "qstash": qstash.counters,
            "dead letters": [d.message.id for d in qstash.dead_letters.values()],
            "attempts": [(a.message_id, a.url.rsplit("/", 1)[-1], a.status) for a in qstash.attempts],
        }

    async def settle(what: str) -> None:
        await wait_until(lambda: settled(conn), SETTLE_SECONDS, what, describe)

    # plain traffic through QStash
    await conn.execute(
        "INSERT INTO embedq_sample.courses (title, description) SELECT 'course ' || g, 'about ' || g "
        "FROM generate_series(1, 12) g"
    )
    await settle("the first rows are embedded through QStash")
    assert (await job_counts(conn)).get("done") == 12

    # a transient provider error (503 with Retry-After): QStash brings the message again
    provider.fail_next(1, status=503, retry_after=0.01)
    await conn.execute("INSERT INTO embedq_sample.posts (title, body) VALUES ('flaky', 'the provider hiccups')")
    await settle("a post survives a provider failure")

    # a permanent provider error: the provider rejects one text
    provider.reject_marker = "POISON-ROW"
    await conn.execute("INSERT INTO embedq_sample.posts (title, body) VALUES ('poison', 'POISON-ROW')")
    await settle("the rejected post ends dead")
    provider.reject_marker = None

    # the provider refuses our key (as after a rotation): its error names a cut-down key
    provider.api_key = "sk-proj-the-key-the-provider-expects-now"
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('refused key')")
    await settle("the job the provider refused ends dead")
    provider.api_key = values.openai_api_key

    # QStash gives up on a message (every attempt 503) and calls /v1/failures
    provider.fail_next(50, status=503, retry_after=0.01)
    dead_letters = len(qstash.dead_letters)
    callbacks = qstash.counters.callbacks
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('QStash gives up on me')")

    async def given_up() -> bool:
        return len(qstash.dead_letters) > dead_letters and qstash.counters.callbacks > callbacks

    await wait_until(given_up, SETTLE_SECONDS, "QStash dead-letters the message and calls back", describe)
    await qstash.wait_idle(timeout=30)
    provider.fail_next(0)
    # (if the delivery overtook the listener's recording of the message id, the callback finds no
    # job and the job waits for EMBEDQ_DISPATCH_TIMEOUT to be published again: kept short here)
    await settle("the queue is quiet after the failure callback")

    # QStash down: the listener's breaker opens and it embeds locally, then QStash is back
    qstash.set_outage(True)
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'outage ' || g FROM generate_series(1, 4) g")
    await settle("rows written during the QStash outage are embedded locally")
    qstash.set_outage(False)

    # forged deliveries on every signed route
    body = json.dumps({"jobs": [{"id": 1}]}).encode()
    for route in ("/v1/jobs", "/v1/failures", "/v1/maintenance"):
        for signature in (
            sign("sig_forgedKeyForTheSecretsTest0001", f"{base}{route}", body),
            sign(values.current_signing_key, "http://attacker.example/v1/jobs", body),
            sign(values.next_signing_key, f"{base}{route}", body + b" "),
            "not.a.jwt",
            "",
        ):
            answer = await http.post(f"{base}{route}", content=body, headers={"upstash-signature": signature})
            assert answer.status_code == 401, answer.text
            run.capture(f"webhook answer to a forged {route}", answer.text + json.dumps(dict(answer.headers)))

    # wrong admin and API tokens, in every place a token is taken
    for wrong in ("wrong", values.api_token, values.admin_token[:-1], values.qstash_token):
        for method, route, kwargs in (
            ("GET", "/", {"params": {"token": wrong}}),
            ("GET", "/v1/jobs", {"headers": {"authorization": f"Bearer {wrong}"}}),
            ("POST", "/v1/jobs/1/replay", {"headers": {"authorization": f"Bearer {wrong}"}}),
            ("POST", "/v1/jobs/1/replay", {"params": {"token": values.admin_token}}),
        ):
            answer = await http.request(method, f"{base}{route}", **kwargs)
            assert answer.status_code in (401, 403), (method, route, answer.status_code)
            run.capture(f"webhook answer to a wrong admin token on {method} {route}", answer.text)
    for wrong in ("wrong", values.qstash_token):
        for route in ("/v1/status", "/metrics", "/v1/search?q=x"):
            answer = await http.get(f"{base}{route}", headers={"authorization": f"Bearer {wrong}"})
            assert answer.status_code == 401, (route, answer.status_code)
            run.capture(f"webhook answer to a wrong API token on {route}", answer.text)


async def capture_read_channels(
    run: Run,
    conn: asyncpg.Connection,
    qstash: QStashServer,
    http: httpx.AsyncClient,
    base: str,
    listener_metrics_port: int | None,
) -> None:
    values = run.secrets
    api = {"authorization": f"Bearer {values.api_token}"}
    admin = {"authorization": f"Bearer {values.admin_token}"}
    for route, headers in (
        ("/v1/status", api),
        ("/metrics", api),
        ("/v1/search?q=course&k=3", api),
        ("/v1/jobs?status=dead&limit=50", admin),
        ("/v1/jobs?status=done&limit=50", admin),
    ):
        answer = await http.get(f"{base}{route}", headers=headers)
        assert answer.status_code == 200, (route, answer.status_code, answer.text[:200])
        run.capture(f"GET {route}", answer.text)
    dashboard = await http.get(f"{base}/", params={"token": values.admin_token})
    assert dashboard.status_code == 200 and "<html" in dashboard.text.lower()
    run.capture("the dashboard's HTML", dashboard.text + json.dumps(dict(dashboard.headers)))
    dead = await conn.fetchval("SELECT min(id) FROM embedq.jobs WHERE status = 'dead'")
    replayed = await http.post(f"{base}/v1/jobs/{dead}/replay", headers=admin)
    assert replayed.status_code == 200, replayed.text
    run.capture("POST replay with the admin token", replayed.text)
    async with asyncio.timeout(10):
        async with http.stream("GET", f"{base}/v1/events", params={"token": values.api_token}) as events:
            assert events.status_code == 200
            await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('an event to watch')")
            seen = ""
            async for chunk in events.aiter_text():
                seen += chunk
                if "queued" in seen or "done" in seen:
                    break
            run.capture("GET /v1/events", seen)
    if listener_metrics_port is not None:
        answer = await http.get(f"http://127.0.0.1:{listener_metrics_port}/metrics")
        run.capture("the listener's /metrics", answer.text)
    last_errors = await conn.fetch("SELECT id, status::text, last_error FROM embedq.jobs WHERE last_error IS NOT NULL")
    assert last_errors, "no job kept an error: the failure paths did not run"
    run.capture("embedq.jobs.last_error", "\n".join(f"{r['id']} {r['status']}: {r['last_error']}" for r in last_errors))
    run.capture(
        "embedq.workers", json.dumps([dict(r) for r in await conn.fetch("SELECT * FROM embedq.workers")], default=str)
    )
    carried = [
        json.dumps(
            {
                "body": m.body.decode(errors="replace"),
                "headers": m.headers,
                "sent": {k: v for k, v in m.request_headers.items() if k != "authorization"},
            }
        )
        for m in qstash.messages.values()
    ]
    answered = [
        json.dumps({"status": a.status, "headers": a.headers, "body": a.body.decode(errors="replace")})
        for a in qstash.attempts
    ]
    run.capture("messages embedq handed QStash", "\n".join(carried))
    run.capture("schedules embedq gave QStash", repr(qstash.schedules))
    run.capture("the webhook's answers to QStash", "\n".join(answered))


def other_database(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/no_such_database"))


async def run_cli_commands(run: Run, conn_dead_job_id: int | None) -> None:
    values = run.secrets
    for name, args in (
        ("status", ["status", "--json"]),
        ("status table", ["status"]),
        ("search", ["search", "course", "--json"]),
        ("models list", ["models", "list", "--json"]),
        ("maintenance", ["maintenance", "--json"]),
        ("replay dry run", ["replay", "--status", "dead", "--dry-run", "--json"]),
        ("verify", ["verify", "--json"]),
    ):
        result = await run.cli(name, *args)
        assert result.returncode in (0, 1), (name, result.stderr[-1000:])  # verify exits 1 on drift
    if conn_dead_job_id is not None:
        await run.cli("jobs show", "jobs", "show", str(conn_dead_job_id), "--json")
    password = values.database_password
    for name, url in (
        ("unreachable database", f"postgresql://embedq:{password}@127.0.0.1:1/nowhere"),
        ("malformed database URL", f"postgresql://embedq:{password}@[::1/nowhere"),
        ("database URL with a bad port", f"postgresql://embedq:{password}@127.0.0.1:port/nowhere"),
        ("wrong database name", other_database(run.env["DATABASE_URL"])),
    ):
        result = await run.cli(name, "status", DATABASE_URL=url)
        assert result.returncode != 0
    served = await run.cli(
        "serve on an unreachable database",
        "serve",
        "--port",
        str(free_port()),
        DATABASE_URL=f"postgresql://embedq:{password}@127.0.0.1:1/nowhere",
    )
    assert served.returncode != 0
    wrong_key = await run.cli(
        "search with a key the provider refuses", "search", "course", OPENAI_API_KEY=values.openai_api_key[:-3] + "zzz"
    )
    assert wrong_key.returncode != 0
