"""The figures each fault scenario records, and the table they are shown in.

Measured from the jobs table after the scenario: rows per second from the first write to the
last vector, the longest time from a write to its vector (faults included), jobs that needed
more than one attempt, and dead jobs. Written as JSON to $EMBEDQ_FAULT_FIGURES (default: a
file in the temporary directory) and printed at the end of the pytest run.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

FIGURES_ENV = "EMBEDQ_FAULT_FIGURES"

MEASURE = """
SELECT count(DISTINCT (content_type, source_id)) AS rows,
       extract(epoch FROM max(finished_at) - min(created_at))::float8 AS seconds,
       coalesce(extract(epoch FROM max(finished_at - created_at)), 0)::float8 AS max_write_to_vector,
       count(*) FILTER (WHERE attempts > 1) AS retried,
       count(*) FILTER (WHERE status = 'dead') AS dead
FROM embedq.jobs
"""


@dataclass
class Figures:
    scenario: str
    scale: str
    rows: int
    seconds: float
    rows_per_second: float
    max_write_to_vector_s: float
    retried: int
    dead: int
    notes: dict = field(default_factory=dict)


async def measure(conn: asyncpg.Connection, scenario: str, scale: str, **notes) -> Figures:
    row = await conn.fetchrow(MEASURE)
    seconds = row["seconds"] or 0.0
    return Figures(
        scenario=scenario,
        scale=scale,
        rows=row["rows"],
        seconds=round(seconds, 2),
        rows_per_second=round(row["rows"] / seconds, 1) if seconds else 0.0,
        max_write_to_vector_s=round(row["max_write_to_vector"], 2),
        retried=row["retried"],
        dead=row["dead"],
        notes=notes,
    )


def figures_path() -> Path:
    return Path(os.environ.get(FIGURES_ENV) or Path(tempfile.gettempdir()) / "embedq-fault-figures.json")


def save(figures: list[Figures], path: Path) -> None:
    path.write_text(json.dumps([asdict(f) for f in figures], indent=2) + "\n")


def load(path: Path) -> list[Figures]:
    return [Figures(**item) for item in json.loads(path.read_text())]


def table(figures: list[Figures]) -> str:
    header = ("scenario", "scale", "rows", "rows/s", "max write->vector s", "retried", "dead", "notes")
    lines = [
        (
            f.scenario,
            f.scale,
            str(f.rows),
            f"{f.rows_per_second:,.1f}",
            f"{f.max_write_to_vector_s:.2f}",
            str(f.retried),
            str(f.dead),
            ", ".join(f"{k}={v}" for k, v in f.notes.items()),
        )
        for f in figures
    ]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header) - 1)]

    def render(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1]

    return "\n".join([render(header), *(render(r) for r in lines)])
