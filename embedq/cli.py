"""The `embedq` command: a thin layer over the functions the services use.

Every failure a user can cause (bad input, unreachable database, missing schema) ends with
one line on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from embedq import db, logs
from embedq.errors import EmbedqError, InvalidInput, NotFound
from embedq.jobs import Job
from embedq.qstash.messages import MAX_JOB_ID
from embedq.queries import query
from embedq.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="embedq",
    help="Keep pgvector embeddings in step with your PostgreSQL rows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
jobs_app = typer.Typer(help="Inspect and steer single jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
models_app = typer.Typer(help="Embedding models: which one search uses.", no_args_is_help=True)
app.add_typer(models_app, name="models")

console = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings() -> Settings:
    settings = Settings.from_env()
    logs.configure(settings.log_format, settings.log_level)
    if settings.embedded:
        # a command that misses its URL must not quietly work on another database
        sys.stderr.write(
            f"embedq: DATABASE_URL is not set: using the embedded PostgreSQL in {settings.data_dir} (EMBEDQ_DATA_DIR)\n"
        )
    return settings


def _run(coro_fn: Callable[[Settings], Awaitable[T]]) -> T:
    settings = _settings()
    return asyncio.run(coro_fn(settings))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


# -- migrate -------------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the embedq schema (same as `alembic upgrade head`). Uses DATABASE_URL."""
    from embedq import migrations

    settings = _settings()
    dsn = db.resolve_dsn(settings)

    async def check() -> None:
        conn = await db.connect(dsn, f"{settings.application_name}-migrate")
        try:
            await db.ensure_pgvector(conn)
        finally:
            await conn.close()

    asyncio.run(check())
    before = migrations.current(dsn)
    migrations.upgrade(dsn)
    after = migrations.current(dsn)
    if before == after:
        console.print(f"schema up to date (revision {after})")
    else:
        console.print(f"migrated {before or 'empty database'} -> {after}")


# -- status --------------------------------------------------------------------------------


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Jobs by status and priority, oldest pending job, rows with vectors per type."""
    from embedq.status import read_status

    async def run(settings: Settings):
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            return await read_status(conn, mode="qstash" if settings.qstash_enabled else "local")

    result = _run(run)
    if as_json:
        _print_json(result.as_json())
        return
    priorities = sorted({p for by_p in result.jobs.values() for p in by_p})
    console.print("jobs by status and priority", style="bold")
    table = Table()
    table.add_column("status")
    for p in priorities:
        table.add_column(f"p{p}", justify="right")
    table.add_column("total", justify="right")
    for name, by_p in result.jobs.items():
        table.add_row(name, *(str(by_p.get(p, 0)) for p in priorities), str(result.totals[name]))
    console.print(table)
    oldest = "none" if result.oldest_pending_seconds is None else f"{result.oldest_pending_seconds:.1f}s"
    console.print(
        f"oldest pending job: {oldest}   done in the last minute: {result.done_last_minute}"
        f"   mode: {result.mode}   active model: {result.active_model or 'none'}"
    )
    for worker in result.workers:
        console.print(
            f"listener {worker['name']}: mode {worker['mode']}, QStash breaker {worker['breaker']}", highlight=False
        )
    console.print("rows with vectors (active model)", style="bold")
    vectors = Table()
    vectors.add_column("content type")
    vectors.add_column("rows", justify="right")
    vectors.add_column("chunks", justify="right")
    for content_type, counts in sorted(result.vectors.items()):
        vectors.add_row(content_type, str(counts["rows"]), str(counts["chunks"]))
    console.print(vectors)


# -- jobs ----------------------------------------------------------------------------------

JobId = Annotated[int, typer.Argument(help="The job id (see `embedq status`).", min=1, max=MAX_JOB_ID)]


async def _get_job(conn, job_id: int) -> Job:
    record = await conn.fetchrow(query("jobs_get"), job_id)
    if record is None:
        raise NotFound(f"job {job_id} does not exist")
    return Job.from_record(record)


def _print_job(job: Job, as_json: bool) -> None:
    if as_json:
        _print_json(job.as_json())
        return
    table = Table(show_header=False, title=f"job {job.id}")
    for name, value in job.as_json().items():
        table.add_row(name, "" if value is None else str(value))
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: JobId, as_json: JsonOption = False) -> None:
    """Show one job, with its attempts and last error."""

    async def run(settings: Settings) -> Job:
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            return await _get_job(conn, job_id)

    _print_job(_run(run), as_json)


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobId, as_json: JsonOption = False) -> None:
    """End a job that has not finished as `dead` (it stays replayable)."""

    async def run(settings: Settings) -> Job:
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            record = await conn.fetchrow(query("jobs_cancel"), job_id)
            if record is None:
                job = await _get_job(conn, job_id)
                raise InvalidInput(f"job {job_id} is already {job.status}; only unfinished jobs can be cancelled")
            return Job.from_record(record)

    _print_job(_run(run), as_json)


@jobs_app.command("retry")
def jobs_retry(job_id: JobId, as_json: JsonOption = False) -> None:
    """Queue a failed, dead or done job again, with its attempts cleared."""

    async def run(settings: Settings) -> Job:
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            async with conn.transaction():
                rows = await conn.fetch(query("jobs_requeue"), [job_id])
            if not rows:
                job = await _get_job(conn, job_id)
                raise InvalidInput(f"job {job_id} is {job.status}; only failed, dead or done jobs can be retried")
            if rows[0]["merged_into"] is not None:
                console.print(
                    f"job {job_id}: its row already has pending job {rows[0]['merged_into']}; merged into it",
                    highlight=False,
                )
            return await _get_job(conn, job_id)

    _print_job(_run(run), as_json)


# -- listen / up ---------------------------------------------------------------------------


async def _run_listener(settings: Settings, *, drain: bool):
    import signal

    from embedq.listener import Listener
    from embedq.providers import create_embedder

    dsn = db.resolve_dsn(settings)
    embedder = create_embedder(settings)
    if hasattr(embedder, "warm"):
        await asyncio.to_thread(embedder.warm)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        from embedq.metrics import REGISTRY

        start_http_server(settings.metrics_port, registry=REGISTRY)
    listener = Listener(dsn, embedder, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, listener.stop)
    try:
        return await listener.run(drain=drain)
    finally:
        if hasattr(embedder, "aclose"):
            await embedder.aclose()


@app.command()
def listen(
    drain: Annotated[bool, typer.Option("--drain", help="Process until nothing is runnable, then exit 0.")] = False,
) -> None:
    """Claim and process jobs (local mode). Tuning: EMBEDQ_BATCH_SIZE, EMBEDQ_CONCURRENCY,
    EMBEDQ_POLL_INTERVAL, EMBEDQ_LEASE_SECONDS, EMBEDQ_BATCH_WINDOW_MS."""
    totals = _run(lambda settings: _run_listener(settings, drain=drain))
    console.print(
        f"done {totals.done}, failed {totals.failed}, dead {totals.dead} ({totals.embedded_chunks} chunks embedded)",
        highlight=False,
    )


async def _serve_forever(settings: Settings, *, with_listener: bool, port: int, host: str) -> None:
    """The webhook (and, for `up`, the listener and the schedules) until SIGTERM / Ctrl-C."""
    import signal

    import uvicorn

    from embedq.listener import Listener
    from embedq.providers import create_embedder
    from embedq.qstash.schedules import upsert_qstash_schedules
    from embedq.webhook.app import create_app

    dsn = db.resolve_dsn(settings)
    # one clear line now, rather than a traceback from the server's startup
    conn = await db.connect(dsn, f"{settings.application_name}-startup")
    try:
        await db.ensure_migrated(conn)
    finally:
        await conn.close()
    embedder = create_embedder(settings)
    if hasattr(embedder, "warm"):
        await asyncio.to_thread(embedder.warm)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, dsn=dsn, embedder=embedder),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    server.install_signal_handlers = lambda: None  # ours below stop both halves together
    stop = asyncio.Event()
    listener = Listener(dsn, embedder, settings) if with_listener else None

    def shutdown() -> None:
        stop.set()
        server.should_exit = True
        if listener is not None:
            listener.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)
    tasks = [asyncio.create_task(server.serve(), name="embedq-webhook")]
    try:
        if listener is not None:
            tasks.append(asyncio.create_task(listener.run(), name="embedq-listener"))
            if settings.qstash_enabled:
                await upsert_qstash_schedules(settings)
            else:
                tasks.append(asyncio.create_task(_local_schedules(dsn, settings, stop), name="embedq-schedules"))
        _done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        shutdown()
        await asyncio.gather(*tasks)
    finally:
        shutdown()
        if hasattr(embedder, "aclose"):
            await embedder.aclose()


async def _local_schedules(dsn: str, settings: Settings, stop: asyncio.Event) -> None:
    from embedq.schedules import run_local_schedules

    pool = await db.create_pool(dsn, f"{settings.application_name}-schedules", min_size=1, max_size=1)
    try:
        await run_local_schedules(pool, stop)
    finally:
        await pool.close()


PortOption = Annotated[
    int | None, typer.Option("--port", help="Port to listen on (EMBEDQ_PORT, default 8000).", min=1, max=65535)
]
HostOption = Annotated[str | None, typer.Option("--host", help="Address to bind (EMBEDQ_HOST, default 127.0.0.1).")]


@app.command()
def up(port: PortOption = None, host: HostOption = None) -> None:
    """Listener + webhook + schedules in one process, until stopped (SIGTERM finishes the batch in hand)."""
    _run(lambda s: _serve_forever(s, with_listener=True, port=port or s.port, host=host or s.host))


@app.command()
def serve(port: PortOption = None, host: HostOption = None) -> None:
    """Only the webhook QStash calls (run as many replicas as you like behind a load balancer)."""
    _run(lambda s: _serve_forever(s, with_listener=False, port=port or s.port, host=host or s.host))


@app.command()
def maintenance(
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Also requeue every failed job now.")] = False,
    done_days: Annotated[int, typer.Option("--done-days", help="Keep done jobs this many days.", min=0)] = 7,
    as_json: JsonOption = False,
) -> None:
    """Prune done jobs older than 7 days and searches older than 30, requeue overlooked failures."""
    from embedq.maintenance import run_maintenance

    async def run(settings: Settings):
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            return await run_maintenance(conn, retry_all_failed=retry_failed, done_keep_days=done_days)

    report = _run(run)
    if as_json:
        _print_json(report.as_json())
    else:
        console.print(
            f"pruned {report.pruned_jobs} done jobs and {report.pruned_searches} searches; "
            f"requeued {report.requeued_failed} failed jobs",
            highlight=False,
        )


# -- search --------------------------------------------------------------------------------


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for, in any language.")],
    content_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only this content type (repeatable).")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="How many results.", min=1, max=1000)] = 10,
    as_json: JsonOption = False,
) -> None:
    """Semantic search over the embedded rows with the active model."""
    from embedq.providers import create_embedder
    from embedq.search import search as run_search

    async def run(settings: Settings):
        embedder = create_embedder(settings)
        try:
            async with db.session(settings) as conn:
                await db.ensure_migrated(conn)
                return await run_search(conn, embedder, text, k=k, content_types=content_type, origin="cli")
        finally:
            if hasattr(embedder, "aclose"):
                await embedder.aclose()

    hits = _run(run)
    if as_json:
        _print_json([h.as_json() for h in hits])
        return
    from embedq.display import hits_table

    console.print(hits_table(f"search: {text}", hits))


# -- backfill ------------------------------------------------------------------------------

BACKFILL_BATCH = 5_000


@app.command()
def backfill(
    content_type: Annotated[str, typer.Option("--type", "-t", help="The content type to queue every row of.")],
    priority: Annotated[int, typer.Option(help="Priority of the queued jobs (1 = most urgent).", min=1, max=9)] = 9,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Fill this model side by side with the active one (search keeps using the "
            "active one until `embedq models activate`). Default: the active model.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue every existing row of a content type, in batches of short transactions."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    async def run(settings: Settings) -> int:
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            source = next(
                (r for r in await conn.fetch(query("sources_list")) if r["content_type"] == content_type), None
            )
            if source is None:
                raise InvalidInput(f"unknown content type {content_type!r}")
            job_model = await _model_to_fill(conn, settings, model) if model is not None else None
            estimate = await conn.fetchval(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = $1::regclass", source["table_name"]
            )
            queued, after = 0, None
            with Progress(
                TextColumn("backfill {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                disable=as_json,
            ) as progress:
                task = progress.add_task(content_type, total=estimate or None)
                while True:
                    row = await conn.fetchrow(
                        query("backfill_batch"), content_type, after, BACKFILL_BATCH, priority, job_model
                    )
                    if row["last_key"] is None:
                        break
                    queued += row["queued"]
                    after = row["last_key"]
                    progress.update(task, completed=queued, total=max(estimate or 0, queued))
            return queued

    queued = _run(run)
    if as_json:
        _print_json({"content_type": content_type, "queued": queued, "model": model})
    else:
        console.print(
            f"queued {queued} {content_type} rows" + (f" for model {model}" if model else ""), highlight=False
        )


async def _model_to_fill(conn, settings: Settings, name: str) -> str | None:
    """The model a backfill queues jobs for: None for the active model (its jobs carry no model),
    else the name, marked maintained so that row changes queue jobs for it from now on too."""
    recorded = await conn.fetchrow(query("models_get"), name)
    if recorded is None:
        if name != settings.model:
            raise NotFound(
                f"model {name!r} is not known: run this with EMBEDQ_MODEL={name} (and its provider "
                "settings) so embedq can record its dimensions, or start a listener with it first"
            )
        recorded = await conn.fetchrow(query("models_ensure"), name, settings.provider, settings.dimensions)
    if recorded["active"]:
        return None
    await conn.execute(query("models_maintain"), name)
    return name


# -- verify --------------------------------------------------------------------------------


@app.command()
def verify(
    content_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only this content type (repeatable).")
    ] = None,
    fix: Annotated[bool, typer.Option("--fix", help="Queue jobs that repair what is found.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare every registered row's current text with its stored vectors (the model EMBEDQ_MODEL
    gives: the active one, or one being filled): missing, stale, orphaned. Exit code 1 on drift."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from embedq.providers import create_embedder
    from embedq.verify import fix as queue_fixes
    from embedq.verify import verify as run_verify

    async def run(settings: Settings):
        embedder = create_embedder(settings)
        try:
            async with db.session(settings) as conn:
                await db.ensure_migrated(conn)
                active = await conn.fetchrow(query("models_active"))
                checked = await conn.fetchrow(query("models_get"), embedder.model)
                is_active = active is None or active["name"] == embedder.model
                if not is_active and not (checked and checked["maintained"]):
                    raise InvalidInput(
                        f"the active model is {active['name']!r} but EMBEDQ_MODEL gives "
                        f"{embedder.model!r}, which is not being filled either: verify with "
                        "the model that embeds"
                    )
                known = {r["content_type"] for r in await conn.fetch(query("sources_list"))}
                for unknown in [t for t in content_type or [] if t not in known]:
                    raise InvalidInput(f"unknown content type {unknown!r}")
                with Progress(
                    TextColumn("verify {task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=Console(stderr=True),
                    disable=as_json,
                ) as progress:
                    tasks: dict[str, object] = {}

                    def advance(kind: str, rows: int) -> None:
                        if kind not in tasks:
                            tasks[kind] = progress.add_task(kind, total=None)
                        progress.update(tasks[kind], advance=rows)

                    try:
                        report = await run_verify(conn, embedder, settings, content_type, advance)
                    except ValueError as exc:
                        raise InvalidInput(str(exc)) from None
                queued = await queue_fixes(conn, embedder.model, report, active=is_active) if fix else 0
                return report, queued
        finally:
            if hasattr(embedder, "aclose"):
                await embedder.aclose()

    report, queued = _run(run)
    drift = sum(d.drift for d in report.values())
    if as_json:
        _print_json({"types": {t: d.as_json() for t, d in report.items()}, "drift": drift, "queued": queued})
    else:
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
        console.print(table)
        console.print(f"drift: {drift}" + (f"; queued {queued} repair jobs" if fix else ""), highlight=False)
    if drift:
        raise typer.Exit(1)


# -- replay --------------------------------------------------------------------------------

REPLAYABLE = ("failed", "dead", "done")
REPLAY_BATCH = 1_000


def _parse_time(value: str | None, option: str):
    from datetime import datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{option} {value!r} is not an ISO date or time (e.g. 2026-11-23T14:00:00+00:00)") from None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@app.command()
def replay(
    status_filter: Annotated[
        str | None,
        typer.Option(
            "--status", help="Comma-separated: failed, dead, done (default failed,dead; done re-embeds on purpose)."
        ),
    ] = None,
    content_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only this content type (repeatable).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only jobs that ended at or after this ISO time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only jobs that ended before this ISO time.")] = None,
    job_ids: Annotated[
        list[int] | None, typer.Option("--id", help="Only these jobs (repeatable).", min=1, max=MAX_JOB_ID)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replayed; change nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Put ended jobs back in the queue, attempts cleared (a fresh QStash deduplication id)."""
    import sys as _sys
    from collections import Counter

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if status_filter is None:
        statuses = list(REPLAYABLE) if job_ids else ["failed", "dead"]
    else:
        statuses = [s.strip() for s in status_filter.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in REPLAYABLE]
        if unknown or not statuses:
            raise InvalidInput(f"--status takes failed, dead and done, not {', '.join(unknown) or 'nothing'}")
    since_at, until_at = _parse_time(since, "--since"), _parse_time(until, "--until")

    async def run(settings: Settings):
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            rows = await conn.fetch(
                query("jobs_replay_candidates"), statuses, content_type or None, since_at, until_at, job_ids or None
            )
            counts = Counter((r["content_type"], r["status"]) for r in rows)
            summary = [{"content_type": t, "status": s, "jobs": n} for (t, s), n in sorted(counts.items())]
            if not as_json:
                table = Table(
                    title=f"{len(rows)} jobs to replay" + (" (dry run)" if dry_run else ""), title_justify="left"
                )
                for column in ("content type", "status", "jobs"):
                    table.add_column(column)
                for item in summary:
                    table.add_row(item["content_type"], item["status"], str(item["jobs"]))
                console.print(table)
            if dry_run or not rows:
                return {
                    "matched": len(rows),
                    "replayed": 0,
                    "merged": 0,
                    "by_type_and_status": summary,
                    "dry_run": dry_run,
                }
            if not yes:
                if not _sys.stdin.isatty():
                    raise InvalidInput(f"{len(rows)} jobs match; pass --yes to replay them without a prompt")
                if not typer.confirm(f"Replay {len(rows)} jobs?"):
                    raise typer.Abort()
            replayed = merged = 0
            ids = [r["id"] for r in rows]
            with Progress(
                TextColumn("replay"), BarColumn(), MofNCompleteColumn(), console=Console(stderr=True), disable=as_json
            ) as progress:
                task = progress.add_task("replay", total=len(ids))
                for start in range(0, len(ids), REPLAY_BATCH):
                    async with conn.transaction():
                        done = await conn.fetch(query("jobs_requeue"), ids[start : start + REPLAY_BATCH])
                    merged += sum(1 for r in done if r["merged_into"] is not None)
                    replayed += len(done)
                    progress.update(task, advance=len(ids[start : start + REPLAY_BATCH]))
            return {
                "matched": len(rows),
                "replayed": replayed,
                "merged": merged,
                "by_type_and_status": summary,
                "dry_run": False,
            }

    result = _run(run)
    if as_json:
        _print_json(result)
    elif not result["dry_run"] and result["matched"]:
        console.print(
            f"replayed {result['replayed']} jobs ({result['merged']} merged into a pending job of the same row)",
            highlight=False,
        )


# -- models --------------------------------------------------------------------------------


@models_app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """Models with vectors in the database: the active one is what search uses; a filling one
    (embedq backfill --model) follows row changes too, until it is activated or dropped."""

    async def run(settings: Settings):
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            return [dict(r) for r in await conn.fetch(query("models_list"))]

    models = _run(run)
    if as_json:
        _print_json(models)
        return
    table = Table()
    for column in ("name", "provider", "dimensions", "vectors", "queued jobs", "hnsw index", "state"):
        table.add_column(column)
    for m in models:
        state = "active" if m["active"] else "filling" if m["maintained"] else ""
        table.add_row(
            m["name"], m["provider"], str(m["dimensions"]), str(m["vectors"]), str(m["queued"]), m["hnsw_index"], state
        )
    console.print(table)


@models_app.command("drop")
def models_drop(
    name: Annotated[str, typer.Argument(help="A model that is not the active one.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a model's vectors, index and queued jobs (never the active model's)."""
    import sys as _sys

    async def run(settings: Settings) -> int:
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            info = await conn.fetchrow(query("models_drop"), name)
            if info["active"] is None:
                raise NotFound(f"model {name!r} is not known")
            if info["active"]:
                raise InvalidInput(f"model {name!r} is the active one: activate another model first")
            if not yes:
                if not _sys.stdin.isatty():
                    raise InvalidInput(f"pass --yes to drop every vector of model {name!r}")
                if not typer.confirm(f"Drop every vector of model {name!r}?"):
                    raise typer.Abort()
            async with conn.transaction():
                await conn.execute(info["drop_index"])
                deleted = await conn.fetchval(query("models_delete_vectors"), name)
                jobs = await conn.fetchval(query("models_delete_jobs"), name)
                await conn.execute(query("models_forget"), name)
            return deleted, jobs

    deleted, jobs = _run(run)
    console.print(f"dropped model {name}: {deleted} vectors and {jobs} jobs deleted", highlight=False)


@models_app.command("activate")
def models_activate(name: Annotated[str, typer.Argument(help="A model from `embedq models list`.")]) -> None:
    """Make search use this model from now on. The previous one keeps its vectors (search it with
    --model) but no longer follows row changes; `embedq models drop` removes them."""
    import asyncpg

    async def run(settings: Settings):
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            # counted before: once active, its queue is shared with the jobs of no model
            queued = await conn.fetchval(query("models_queued_jobs"), name)
            try:
                model = await conn.fetchrow(query("models_activate"), name)
            except asyncpg.UndefinedObjectError as exc:
                raise NotFound(exc.args[0].removeprefix("embedq: ")) from None
            return model, queued

    model, queued = _run(run)
    console.print(f"active model: {model['name']} ({model['dimensions']} dimensions)", highlight=False)
    if queued:
        Console(stderr=True).print(
            f"warning: {queued} jobs of {name} are still queued; search misses those rows until they are done",
            highlight=False,
        )


# -- sample application --------------------------------------------------------------------


@app.command()
def sample(
    rows: Annotated[bool, typer.Option("--rows/--no-rows", help="Also write the sample rows (once).")] = True,
) -> None:
    """Create the sample application (schema embedq_sample: profiles, courses, lessons, posts,
    comments), registered as sources, with its rows. Never needed for your own tables."""
    from embedq.sample import create_sample_app, insert_sample_rows, sample_rows_present

    async def run(settings: Settings) -> dict[str, int]:
        async with db.session(settings) as conn:
            await db.ensure_migrated(conn)
            await create_sample_app(conn)
            if rows and not await sample_rows_present(conn):
                return await insert_sample_rows(conn)
            return {}

    written = _run(run)
    console.print(
        "sample application ready in schema embedq_sample"
        + ("; rows written: " + ", ".join(f"{n} {t}s" for t, n in written.items()) if written else ""),
        highlight=False,
    )


# -- demo ----------------------------------------------------------------------------------


@app.command()
def demo() -> None:
    """Migrate, write sample rows, watch their embeddings appear, run sample searches."""
    from embedq.demo import run_demo

    _run(lambda settings: run_demo(settings, console))


# -- entry point ---------------------------------------------------------------------------


def _fail(message: str) -> None:
    first_line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    sys.stderr.write(f"embedq: error: {first_line}\n")
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="embedq", standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("embedq: aborted\n")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: bad option, bad value, unknown command
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _fail(f"{message} (see `embedq --help`)")
    except EmbedqError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.stderr.write("embedq: interrupted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
