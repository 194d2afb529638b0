"""Migrations: alembic revisions stay thin and apply the plain .sql files in sql/.

`embedq migrate` == `alembic upgrade head`. Function files are idempotent
(CREATE OR REPLACE) and re-applied by any revision that changes them. embedq's history lives in
its own version table, `embedq.alembic_version`: an application's own Alembic history (in
`public.alembic_version`) is never read or written.
"""

from __future__ import annotations

from typing import Any

from embedq.db import resolve_dsn
from embedq.resources import alembic_dir, read_sql
from embedq.settings import Settings

MIGRATION_LOCK_ID = 7_406_219_001
FUNCTION_FILES = ("functions/sources.sql", "functions/jobs.sql", "functions/search.sql")
VERSION_SCHEMA = "embedq"
VERSION_TABLE = "alembic_version"


def sqlalchemy_url(dsn: str | None) -> str:
    """A SQLAlchemy URL (psycopg driver) for a libpq DSN; DATABASE_URL when dsn is None."""
    if dsn is None:
        dsn = resolve_dsn(Settings.from_env())
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    return dsn


def adopt_legacy_version(connection: Any) -> None:
    """embedq 0.1 kept its revision in public.alembic_version; move it to embedq's own table
    (sql/schema/legacy_version_adopt.sql says when)."""
    connection.connection.driver_connection.execute(read_sql("schema/legacy_version_adopt.sql"))


def apply_sql(*relative_paths: str) -> None:
    """Run sql/ files on the migration's connection, as written (no parameter parsing)."""
    from alembic import op  # deferred: ~0.5 s of imports, for migrations only

    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None  # psycopg's connection under SQLAlchemy's
    for relative in relative_paths:
        driver_connection.execute(read_sql(relative))


def _config(dsn: str):
    from alembic.config import Config  # deferred: ~0.5 s of imports, for migrations only

    config = Config()  # no alembic.ini needed: env.py configures everything it uses
    config.set_main_option("script_location", str(alembic_dir()))
    config.attributes["database_url"] = sqlalchemy_url(dsn)
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    from alembic import command  # deferred: ~0.5 s of imports, for migrations only

    command.upgrade(_config(dsn), revision)


def downgrade(dsn: str, revision: str = "base") -> None:
    from alembic import command  # deferred: ~0.5 s of imports, for migrations only

    command.downgrade(_config(dsn), revision)


def current(dsn: str) -> str | None:
    from alembic.runtime.migration import MigrationContext  # deferred: ~0.5 s of imports, for migrations only
    from sqlalchemy import create_engine, pool  # deferred: ~0.5 s of imports, for migrations only

    engine = create_engine(sqlalchemy_url(dsn), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "version_table_schema": VERSION_SCHEMA}
            )
            return context.get_current_revision()
    finally:
        engine.dispose()


def head() -> str:
    from alembic.script import ScriptDirectory  # deferred: ~0.5 s of imports, for migrations only

    revision = ScriptDirectory(str(alembic_dir())).get_current_head()
    if revision is None:
        raise RuntimeError(f"no alembic revisions in {alembic_dir()}")
    return revision
