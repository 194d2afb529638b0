"""The last hour, minute by minute: queue depth and write -> vector latency by priority, behind
`GET /v1/history` and the dashboard's charts. Computed in SQL from embedq.jobs (done jobs are
kept 7 days), so every webhook replica answers the same and nothing is kept in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from embedq.queries import query


@dataclass(frozen=True)
class Latency:
    """One priority's write -> vector seconds of the jobs done in each minute (None: none done)."""

    jobs: list[int]
    p50: list[float | None]
    p99: list[float | None]


@dataclass
class History:
    #: the start of each minute, oldest first; the last one is the minute running now
    minutes: list[datetime] = field(default_factory=list)
    #: priority -> jobs not ended at the end of each minute (for the last one: now)
    depth: dict[int, list[int]] = field(default_factory=dict)
    latency: dict[int, Latency] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        def rounded(values: list[float | None]) -> list[float | None]:
            return [None if v is None else round(v, 3) for v in values]

        return {
            "minutes": [m.isoformat() for m in self.minutes],
            "depth": {str(p): series for p, series in self.depth.items()},
            "latency": {
                str(p): {"jobs": lat.jobs, "p50": rounded(lat.p50), "p99": rounded(lat.p99)}
                for p, lat in self.latency.items()
            },
        }


async def read_history(conn: asyncpg.Connection) -> History:
    history = History()
    # one transaction: both statements see the same now(), hence the same minutes
    async with conn.transaction(readonly=True):
        depth_rows = await conn.fetch(query("jobs_history_depth"))
        latency_rows = await conn.fetch(query("jobs_history_latency"))
    for row in depth_rows:
        if not history.minutes or row["minute"] > history.minutes[-1]:
            history.minutes.append(row["minute"])
        if row["priority"] is not None:
            history.depth.setdefault(row["priority"], []).append(row["jobs"])
    index = {minute: n for n, minute in enumerate(history.minutes)}
    size = len(history.minutes)
    for row in latency_rows:
        latency = history.latency.get(row["priority"])
        if latency is None:
            latency = history.latency[row["priority"]] = Latency([0] * size, [None] * size, [None] * size)
        n = index[row["minute"]]
        latency.jobs[n], latency.p50[n], latency.p99[n] = row["jobs"], row["p50"], row["p99"]
    return history
