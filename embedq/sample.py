"""The sample application (`embedq sample`, `embedq demo`): tables in the schema `embedq_sample`
(sql/sample/schema.sql) and rows from embedq/data/sample.json. Nothing in embedq's core knows
these content types: they are registered, with their templates, like any user table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import asyncpg

from embedq.queries import query
from embedq.resources import read_sql

SCHEMA = "embedq_sample"


@dataclass(frozen=True)
class SampleSearch:
    text: str
    content_type: str | None


def sample_data() -> dict[str, Any]:
    return json.loads(files("embedq").joinpath("data", "sample.json").read_text(encoding="utf-8"))


def sample_searches() -> list[SampleSearch]:
    return [SampleSearch(s["text"], s["content_type"]) for s in sample_data()["searches"]]


async def create_sample_app(conn: asyncpg.Connection) -> None:
    """The sample schema, its tables and their registrations. Idempotent."""
    await conn.execute(read_sql("sample/schema.sql"))


async def create(conn: asyncpg.Connection, *, with_rows: bool = True) -> dict[str, int]:
    """`embedq sample`: the sample application, and its rows unless they are there already;
    returns how many rows of each content type were written."""
    await create_sample_app(conn)
    if with_rows and not await sample_rows_present(conn):
        return await insert_sample_rows(conn)
    return {}


async def sample_rows_present(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(query("sample_rows_present")))


async def insert_sample_rows(conn: asyncpg.Connection) -> dict[str, int]:
    """Write the sample rows in one transaction; returns how many of each content type."""
    async with conn.transaction():
        rows = await conn.fetch(query("sample_load"), json.dumps(sample_data()))
    return {r["content_type"]: r["written"] for r in rows}
