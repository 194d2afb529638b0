"""Named SQL queries from sql/queries.sql, loaded once."""

from __future__ import annotations

import functools
import re

from embedq.resources import read_sql

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
    return parse_queries(read_sql("queries.sql"))


def query(name: str) -> str:
    try:
        return all_queries()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/queries.sql") from None
