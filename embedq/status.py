"""Queue and index status: the numbers behind `embedq status` and `GET /v1/status`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from embedq.jobs import JobStatus
from embedq.queries import query

THROUGHPUT_WINDOW_SECONDS = 60


@dataclass
class Status:
    jobs: dict[str, dict[int, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    oldest_pending_seconds: float | None = None
    done_last_minute: int = 0
    vectors: dict[str, dict[str, int]] = field(default_factory=dict)
    active_model: str | None = None
    mode: str = "local"
    #: listeners seen in the last two minutes, with their delivery mode and QStash breaker
    workers: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["jobs"] = {s: {str(p): n for p, n in by_p.items()} for s, by_p in self.jobs.items()}
        data["throughput_per_second"] = round(self.done_last_minute / THROUGHPUT_WINDOW_SECONDS, 3)
        for worker in data["workers"]:
            for key in ("started_at", "seen_at"):
                worker[key] = worker[key].isoformat()
        return data


async def read_status(conn: asyncpg.Connection, mode: str = "local") -> Status:
    status = Status(mode=mode)
    await conn.execute(query("jobs_ingest"))
    status.jobs = {s.value: {} for s in JobStatus}
    status.totals = {s.value: 0 for s in JobStatus}
    for row in await conn.fetch(query("jobs_count_by_status_priority")):
        status.jobs[row["status"]][row["priority"]] = row["jobs"]
        status.totals[row["status"]] += row["jobs"]
    status.oldest_pending_seconds = await conn.fetchval(query("jobs_oldest_pending_age"))
    status.done_last_minute = await conn.fetchval(query("jobs_finished_since"), float(THROUGHPUT_WINDOW_SECONDS))
    active = await conn.fetchrow(query("models_active"))
    status.active_model = active["name"] if active else None
    for row in await conn.fetch(query("embeddings_count_by_type")):
        status.vectors[row["content_type"]] = {"rows": row["sources"], "chunks": row["chunks"]}
    status.workers = [dict(r) for r in await conn.fetch(query("workers_active"))]
    if any(w["mode"] == "fallback" for w in status.workers):
        status.mode = "fallback"
    for row in await conn.fetch(query("sources_list")):
        status.vectors.setdefault(row["content_type"], {"rows": 0, "chunks": 0})
    return status
