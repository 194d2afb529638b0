"""`embedq migrate` in an application's existing database: it creates and changes embedq's own
objects only (and the vector extension, where the database does not have it yet). The
application's Alembic history, its tables (even ones named like the sample application's) and
their triggers are untouched, after a migrate and after a downgrade to base."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from embedq import migrations

APPLICATION = """
CREATE TABLE public.alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY);
INSERT INTO public.alembic_version VALUES ('ae1027a6acf');
-- the same names as the sample application's tables, another shape
CREATE TABLE public.posts (slug text PRIMARY KEY, headline text NOT NULL, published boolean DEFAULT false);
CREATE TABLE public.courses (code text PRIMARY KEY, name text, seats int);
CREATE TABLE public.audit (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION public.audit_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit (what) VALUES (TG_OP || ' ' || NEW.slug); RETURN NEW; END $$;
CREATE TRIGGER posts_audit AFTER INSERT ON public.posts FOR EACH ROW EXECUTE FUNCTION public.audit_posts();
INSERT INTO public.posts (slug, headline) VALUES ('hello', 'Hello world');
INSERT INTO public.courses VALUES ('CS-4821', 'Databases', 30);
"""

SNAPSHOT = """
SELECT 'version', version_num FROM public.alembic_version
UNION ALL SELECT 'table', relname || ':' || relkind::text FROM pg_class
    WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v')
UNION ALL SELECT 'column', attrelid::regclass || '.' || attname || ':' || format_type(atttypid, atttypmod)
    FROM pg_attribute WHERE attrelid IN ('public.posts'::regclass, 'public.courses'::regclass)
    AND attnum > 0 AND NOT attisdropped
UNION ALL SELECT 'trigger', tgrelid::regclass || '.' || tgname FROM pg_trigger
    WHERE tgrelid IN ('public.posts'::regclass, 'public.courses'::regclass) AND NOT tgisinternal
UNION ALL SELECT 'function', p.oid::regprocedure::text FROM pg_proc p WHERE pronamespace = 'public'::regnamespace
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')  -- pgvector's own
UNION ALL SELECT 'post', slug || '/' || headline FROM public.posts
UNION ALL SELECT 'course', code || '/' || name FROM public.courses
ORDER BY 1, 2
"""


@contextlib.contextmanager
def application_database(embedded_server) -> Iterator[str]:
    name = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = f"postgresql://postgres@/{name}?host={embedded_server.host}&port=5432"
    try:
        yield dsn
    finally:
        with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def snapshot(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(SNAPSHOT).fetchall()


def embedq_migrate(dsn: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env["DATABASE_URL"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "embedq", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_leaves_the_application_untouched_also_after_a_downgrade(embedded_server):
    with application_database(embedded_server) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(APPLICATION)
        before = snapshot(dsn)

        result = embedq_migrate(dsn)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot(dsn) == before
        assert migrations.current(dsn) == migrations.head()
        with psycopg.connect(dsn, autocommit=True) as conn:
            # embedq's history is in its own table; no sample application was created
            assert conn.execute("SELECT version_num FROM embedq.alembic_version").fetchall() == [(migrations.head(),)]
            assert conn.execute("SELECT count(*) FROM embedq.sources").fetchone() == (0,)
            assert conn.execute("SELECT to_regnamespace('embedq_sample')").fetchone() == (None,)
            # the application's own trigger still runs
            conn.execute("INSERT INTO public.posts (slug, headline) VALUES ('again', 'Again')")
            assert conn.execute("SELECT count(*) FROM public.audit").fetchone() == (2,)
            conn.execute("DELETE FROM public.posts WHERE slug = 'again'")

        assert embedq_migrate(dsn).returncode == 0  # idempotent
        assert snapshot(dsn) == before

        migrations.downgrade(dsn, "base")
        assert snapshot(dsn) == before
        assert migrations.current(dsn) is None


def test_registering_an_application_table_then_downgrading_keeps_the_table(embedded_server):
    with application_database(embedded_server) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(APPLICATION)
        before = snapshot(dsn)
        assert embedq_migrate(dsn).returncode == 0
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "SELECT embedq.register_source('course', 'public.courses', ARRAY['name'], key_column => 'code')"
            )
            conn.execute("UPDATE public.courses SET name = 'Databases II'")
            assert conn.execute("SELECT embedq.jobs_ingest()").fetchone() == (1,)
            conn.execute("UPDATE public.courses SET name = 'Databases'")

        migrations.downgrade(dsn, "base")
        assert snapshot(dsn) == before  # embedq's triggers went with its schema; the table stayed


@pytest.mark.parametrize("revision", ["0002", "0003"])
def test_a_database_migrated_by_embedq_0_1_moves_its_history_to_embedq(embedded_server, revision):
    with application_database(embedded_server) as dsn:
        migrations.upgrade(dsn, revision)
        with psycopg.connect(dsn, autocommit=True) as conn:
            # as embedq 0.1 left it: its revision in public.alembic_version
            conn.execute("DROP TABLE embedq.alembic_version")
            conn.execute("CREATE TABLE public.alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY)")
            conn.execute("INSERT INTO public.alembic_version VALUES (%s)", (revision,))

        result = embedq_migrate(dsn)
        assert result.returncode == 0, result.stderr
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT version_num FROM embedq.alembic_version").fetchall() == [(migrations.head(),)]
            assert conn.execute("SELECT count(*) FROM public.alembic_version").fetchone() == (0,)


def test_an_application_history_that_only_looks_like_embedq_0_1_is_left_alone(embedded_server):
    with application_database(embedded_server) as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            # the application numbers its own revisions; embedq's schema is not there
            conn.execute("CREATE TABLE public.alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY)")
            conn.execute("INSERT INTO public.alembic_version VALUES ('0002')")
        assert embedq_migrate(dsn).returncode == 0
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT version_num FROM public.alembic_version").fetchall() == [("0002",)]
