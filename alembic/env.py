"""Alembic environment: revisions are thin and apply the files in sql/ (embedq.migrations).

embedq keeps its history in its own version table, `embedq.alembic_version`, so that it never
meets an application's own Alembic history in `public.alembic_version`.
"""

from sqlalchemy import create_engine, pool, text

from alembic import context
from embedq.migrations import MIGRATION_LOCK_ID, VERSION_SCHEMA, VERSION_TABLE, adopt_legacy_version, sqlalchemy_url

config = context.config


def run_migrations_online() -> None:
    url = config.attributes.get("database_url") or sqlalchemy_url(None)
    engine = create_engine(url, poolclass=pool.NullPool, connect_args={"application_name": "embedq-migrate"})
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=None,
            transaction_per_migration=False,
            version_table=VERSION_TABLE,
            version_table_schema=VERSION_SCHEMA,
        )
        with context.begin_transaction():
            # Two `embedq migrate` at once: the second waits, then finds nothing to do.
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA}"))
            adopt_legacy_version(connection)
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("embedq migrations run online only: `embedq migrate` or `alembic upgrade head`")
run_migrations_online()
