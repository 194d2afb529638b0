"""What the command line prints: tables for people, JSON for scripts, progress bars on stderr.

Progress bars start on their first update, so a command that fails before it has done any work
prints its one-line error and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # types only: printing needs none of these modules (or their numpy, httpx)
    from embedq.doctor import Check
    from embedq.jobs import Job
    from embedq.models import ModelInfo
    from embedq.operations import Replayed, ReplayPlan
    from embedq.preview import Preview
    from embedq.status import Status
    from embedq.verify import TypeDrift

SNIPPET_CHARACTERS = 110

#: stdout; rich looks up sys.stdout when it prints, so redirections made later are honoured
console = Console()


class SearchHit(Protocol):
    @property
    def content_type(self) -> str: ...
    @property
    def source_id(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def content(self) -> str: ...


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def say(text: str) -> None:
    """One line for people, printed as written (no markup, no highlighting, never wrapped)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def warn(text: str) -> None:
    Console(stderr=True).print(text, highlight=False, markup=False, soft_wrap=True)


def hits_table(title: str, hits: Sequence[SearchHit]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("score", justify="right")
    table.add_column("type")
    table.add_column("id", justify="right")
    table.add_column("content")
    for hit in hits:
        snippet = " ".join(hit.content.split())
        ellipsis = "..." if len(snippet) > SNIPPET_CHARACTERS else ""
        table.add_row(f"{hit.score:.3f}", hit.content_type, hit.source_id, snippet[:SNIPPET_CHARACTERS] + ellipsis)
    return table


def print_status(status: Status) -> None:
    priorities = sorted({p for by_p in status.jobs.values() for p in by_p})
    console.print("jobs by status and priority", style="bold")
    table = Table()
    table.add_column("status")
    for p in priorities:
        table.add_column(f"p{p}", justify="right")
    table.add_column("total", justify="right")
    for name, by_p in status.jobs.items():
        table.add_row(name, *(str(by_p.get(p, 0)) for p in priorities), str(status.totals[name]))
    console.print(table)
    oldest = "none" if status.oldest_pending_seconds is None else f"{status.oldest_pending_seconds:.1f}s"
    say(
        f"oldest pending job: {oldest}   done in the last minute: {status.done_last_minute}"
        f"   mode: {status.mode}   active model: {status.active_model or 'none'}"
    )
    for worker in status.workers:
        say(f"listener {worker['name']}: mode {worker['mode']}, QStash breaker {worker['breaker']}")
        if worker.get("problem"):
            say(f"  last delivery problem (within the hour): {worker['problem']}")
    console.print("rows with vectors (active model)", style="bold")
    vectors = Table()
    vectors.add_column("content type")
    vectors.add_column("rows", justify="right")
    vectors.add_column("chunks", justify="right")
    for content_type, counts in sorted(status.vectors.items()):
        vectors.add_row(content_type, str(counts["rows"]), str(counts["chunks"]))
    console.print(vectors)


def print_job(job: Job, as_json: bool) -> None:
    if as_json:
        print_json(job.as_json())
        return
    table = Table(show_header=False, title=f"job {job.id}")
    for name, value in job.as_json().items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)


def replay_table(summary: Sequence[Mapping[str, Any]], matched: int, dry_run: bool) -> Table:
    table = Table(title=f"{matched} jobs to replay" + (" (dry run)" if dry_run else ""), title_justify="left")
    for column in ("content type", "status", "jobs"):
        table.add_column(column)
    for item in summary:
        table.add_row(item["content_type"], item["status"], str(item["jobs"]))
    return table


def replay_json(plan: ReplayPlan, replayed: Replayed | None, dry_run: bool) -> dict[str, Any]:
    return {
        "matched": len(plan.job_ids),
        "replayed": replayed.replayed if replayed else 0,
        "merged": replayed.merged if replayed else 0,
        "by_type_and_status": plan.summary(),
        "dry_run": dry_run,
    }


def models_table(models: Sequence[ModelInfo]) -> Table:
    table = Table()
    for column in ("name", "provider", "dimensions", "vectors", "queued jobs", "hnsw index", "state"):
        table.add_column(column)
    for m in models:
        table.add_row(m.name, m.provider, str(m.dimensions), str(m.vectors), str(m.queued), m.hnsw_index, m.state)
    return table


def verify_table(report: Mapping[str, TypeDrift]) -> Table:
    table = Table()
    for column in ("content type", "rows", "missing", "stale", "orphaned", "in flight"):
        table.add_column(column, justify="left" if column == "content type" else "right")
    for name, d in report.items():
        table.add_row(
            name + (" (not registered)" if d.unregistered else ""),
            str(d.checked),
            str(len(d.missing)),
            str(len(d.stale)),
            str(len(d.orphaned)),
            str(d.in_flight),
        )
    return table


def doctor_table(checks: Sequence[Check]) -> Table:
    table = Table()
    for column in ("check", "result", "detail"):
        table.add_column(column)
    styles = {"ok": "green", "failed": "bold red", "skipped": "dim"}
    for check in checks:
        table.add_row(check.name, f"[{styles[check.verdict.value]}]{check.verdict.value}[/]", check.detail)
    return table


def print_preview(preview: Preview) -> None:
    console.print(f"{preview.content_type} {preview.source_id}", style="bold", highlight=False, markup=False)
    say("template: " + ("default (one `Label: value` line per field)" if preview.template is None else "registered"))
    console.print("text", style="bold")
    say(preview.text or "(empty: nothing to embed)")
    for chunk in preview.chunks:
        console.print(f"chunk {chunk.index} ({chunk.tokens} tokens of {preview.model})", style="bold", highlight=False)
        say(chunk.content)


@contextlib.contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[Callable[[int, int | None], None]]:
    """A bar on stderr, fed with (done, total or None)."""
    with _LazyProgress(enabled) as progress:

        def update(completed: int, total: int | None) -> None:
            progress.update(description, completed=completed, total=total)

        yield update


@contextlib.contextmanager
def progress_by_kind(label: str, *, enabled: bool = True) -> Iterator[Callable[[str, int], None]]:
    """One counter per kind (e.g. content type) on stderr, fed with (kind, rows just done)."""
    with _LazyProgress(enabled, label) as progress:

        def advance(kind: str, rows: int) -> None:
            progress.update(kind, advance=rows)

        yield advance


class _LazyProgress:
    def __init__(self, enabled: bool, label: str | None = None) -> None:
        self.enabled = enabled
        self.label = label
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _LazyProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, name: str, **changes: Any) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            prefix = f"{self.label} " if self.label else ""
            self.progress = Progress(
                TextColumn(prefix + "{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self.progress.start()
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=changes.pop("total", None))
        self.progress.update(self.tasks[name], **changes)
