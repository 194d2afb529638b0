"""Named SQL queries from embedq/sql/queries.sql, loaded once."""

from __future__ import annotations

import functools
import re
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name: x` blocks into {name: sql}. Comments before a name are dropped."""
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        sql = "\n".join(line for line in body.strip().splitlines() if not line.lstrip().startswith("--"))
        queries[name] = sql.strip()
    return queries


@functools.cache
def all_queries() -> dict[str, str]:
    return parse_queries((SQL_DIR / "queries.sql").read_text(encoding="utf-8"))


def query(name: str) -> str:
    try:
        return all_queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in {SQL_DIR / 'queries.sql'}") from None
