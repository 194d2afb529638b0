"""Drift check: does every registered row have the vectors its current text calls for?

For each row the text is rebuilt, chunked and hashed exactly as processing does
(processing.chunk_row) and compared with the stored hashes of the model:
- missing: the row has text but no vectors;
- stale: the stored chunks differ from what the text gives now (edited while no listener ran,
  vectors changed by hand, a text that became empty);
- orphaned: vectors of a row that no longer exists (or of a type no longer registered).
Rows with a job still in flight are counted apart: they are about to be brought up to date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import asyncpg

from embedq.errors import InvalidInput
from embedq.jobs import JobOp
from embedq.processing import chunk_row
from embedq.providers.base import Embedder
from embedq.queries import query
from embedq.settings import Settings

PAGE_SIZE = 500


@dataclass
class TypeDrift:
    checked: int = 0
    in_flight: int = 0
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    unregistered: bool = False

    @property
    def drift(self) -> int:
        return len(self.missing) + len(self.stale) + len(self.orphaned)

    def as_json(self) -> dict:
        return {**asdict(self), "drift": self.drift}


async def check_model(conn: asyncpg.Connection, model: str) -> bool:
    """Whether `model` is the active model (else it is being filled side by side, and its repair
    jobs must name it). InvalidInput for a model that is neither: its vectors follow nothing."""
    active = await conn.fetchrow(query("models_active"))
    checked = await conn.fetchrow(query("models_get"), model)
    is_active = active is None or active["name"] == model
    if not is_active and not (checked and checked["maintained"]):
        raise InvalidInput(
            f"the active model is {active['name']!r} but EMBEDQ_MODEL gives {model!r}, which is not "
            "being filled either: verify with the model that embeds"
        )
    return is_active


async def verify(
    conn: asyncpg.Connection,
    embedder: Embedder,
    settings: Settings,
    content_types: list[str] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, TypeDrift]:
    """Every registered row of `content_types` (None: all) compared with its stored vectors.
    InvalidInput for a type that is not registered, before any work."""
    await conn.execute(query("jobs_ingest"))
    sources = {r["content_type"]: r for r in await conn.fetch(query("sources_list"))}
    wanted = content_types or list(sources)
    for unknown in [t for t in wanted if t not in sources]:
        raise InvalidInput(f"unknown content type {unknown!r}")
    report: dict[str, TypeDrift] = {}
    for content_type in wanted:
        report[content_type] = drift = TypeDrift()
        await _check_rows(conn, embedder, settings, sources[content_type], drift, progress)
        await _check_orphans(conn, embedder.model, content_type, drift)
    if not content_types:
        for row in await conn.fetch(query("embeddings_unregistered_types"), embedder.model):
            report[row["content_type"]] = TypeDrift(unregistered=True, orphaned=["*"] * row["sources"])
    return report


async def _check_rows(conn, embedder, settings, source, drift: TypeDrift, progress) -> None:
    content_type = source["content_type"]
    after = None
    while True:
        page = await conn.fetch(query("source_page"), content_type, after, PAGE_SIZE)
        if not page:
            return
        after = page[-1]["source_id"]
        ids = [r["source_id"] for r in page]
        busy = {r[0] for r in await conn.fetch(query("jobs_unfinished_sources"), content_type, ids)}
        stored: dict[str, dict[int, str]] = {i: {} for i in ids}
        for r in await conn.fetch(query("embeddings_hashes"), embedder.model, [content_type] * len(ids), ids):
            stored[r["source_id"]][r["chunk_index"]] = r["content_hash"]

        def compare(page=page, busy=busy, stored=stored) -> None:
            for record in page:
                source_id = record["source_id"]
                drift.checked += 1
                if source_id in busy:
                    drift.in_flight += 1
                    continue
                try:
                    _, hashes = chunk_row(source["fields"], source["template"], record["fields"], embedder, settings)
                except (ValueError, TypeError, UnicodeError):
                    hashes = None  # processing marks such a row dead; nothing to compare
                have = stored[source_id]
                if hashes is None:
                    continue
                if hashes and not have:
                    drift.missing.append(source_id)
                elif have != dict(enumerate(hashes)):
                    drift.stale.append(source_id)

        await asyncio.to_thread(compare)
        if progress:
            progress(content_type, len(page))


async def _check_orphans(conn, model: str, content_type: str, drift: TypeDrift) -> None:
    after = None
    while True:
        page = [r[0] for r in await conn.fetch(query("embeddings_source_page"), model, content_type, after, PAGE_SIZE)]
        if not page:
            return
        after = page[-1]
        existing = {r["source_id"] for r in await conn.fetch(query("source_rows"), content_type, page)}
        drift.orphaned.extend(i for i in page if i not in existing)


@dataclass
class Verification:
    """A verify run: drift per content type, and the repair jobs queued (with fix=True)."""

    report: dict[str, TypeDrift]
    queued: int = 0

    @property
    def drift(self) -> int:
        return sum(d.drift for d in self.report.values())

    def as_json(self) -> dict:
        return {"types": {t: d.as_json() for t, d in self.report.items()}, "drift": self.drift, "queued": self.queued}


async def run(
    conn: asyncpg.Connection,
    embedder: Embedder,
    settings: Settings,
    content_types: list[str] | None = None,
    *,
    fix_drift: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> Verification:
    """`embedq verify [--fix]`: check the model, compare, and queue the repairs if asked."""
    is_active = await check_model(conn, embedder.model)
    report = await verify(conn, embedder, settings, content_types, progress)
    queued = await fix(conn, embedder.model, report, active=is_active) if fix_drift else 0
    return Verification(report, queued)


async def fix(
    conn: asyncpg.Connection, model: str, report: dict[str, TypeDrift], priority: int = 3, *, active: bool = True
) -> int:
    """Queue the repairs: an upsert for missing and stale rows, a delete for orphans. Vectors of
    types no longer registered are deleted at once (no source is left to process them).
    active=False: the model is being filled side by side, and its repair jobs name it."""
    job_model = None if active else model
    queued = 0
    async with conn.transaction():
        for content_type, drift in report.items():
            if drift.unregistered:
                await conn.execute(query("embeddings_delete_type"), model, content_type)
                continue
            if drift.missing or drift.stale:
                queued += await conn.fetchval(
                    query("jobs_queue"),
                    content_type,
                    drift.missing + drift.stale,
                    JobOp.UPSERT.value,
                    priority,
                    job_model,
                )
            if drift.orphaned:
                queued += await conn.fetchval(
                    query("jobs_queue"), content_type, drift.orphaned, JobOp.DELETE.value, priority, job_model
                )
    return queued
