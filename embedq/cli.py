"""The `embedq` command: it parses, calls the Python API and the core operations (the ones the
services use), and prints (embedq.display).

Every failure a user can cause (bad input, unreachable database, missing schema) ends with
one line on stderr and exit code 2; never a traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import asyncpg
import typer

import embedq
from embedq import display, logs, models, operations
from embedq import sample as sample_app
from embedq import verify as verification
from embedq.client import AsyncClient
from embedq.display import console, print_json, say
from embedq.errors import EmbedqError, InvalidInput
from embedq.maintenance import run_maintenance
from embedq.qstash.messages import MAX_JOB_ID
from embedq.search import parse_filters
from embedq.settings import Settings
from embedq.store import JobStore

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

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TypesOption = Annotated[list[str] | None, typer.Option("--type", "-t", help="Only this content type (repeatable).")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _settings() -> Settings:
    settings = Settings.from_env()
    logs.configure(settings.log_format, settings.log_level)
    if settings.embedded:
        # a command that misses its URL must not quietly work on another database
        sys.stderr.write(
            f"embedq: DATABASE_URL is not set: using the embedded PostgreSQL in {settings.data_dir} (EMBEDQ_DATA_DIR)\n"
        )
    return settings


def _with_client(work: Callable[[AsyncClient], Awaitable[T]]) -> T:
    settings = _settings()

    async def run() -> T:
        async with AsyncClient(settings=settings, application_name=f"{settings.application_name}-cli") as client:
            return await work(client)

    return asyncio.run(run())


def _with_connection(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run(client: AsyncClient) -> T:
        async with client.connection() as conn:
            return await work(conn)

    return _with_client(run)


def _with_store(work: Callable[[JobStore], Awaitable[T]]) -> T:
    async def run(client: AsyncClient) -> T:
        return await work(JobStore(await client.pool()))

    return _with_client(run)


def _confirm(question: str, refusal: str) -> None:
    """Ask on a terminal; without one, refuse with a line that says which option skips the question."""
    if not sys.stdin.isatty():
        raise InvalidInput(refusal)
    if not typer.confirm(question):
        raise typer.Abort()


def _version(value: bool) -> None:
    if value:
        say(f"embedq {embedq.__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Keep pgvector embeddings in step with your PostgreSQL rows."""


# -- schema --------------------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Create or upgrade the embedq schema (same as `alembic upgrade head`). Uses DATABASE_URL."""
    migration = _with_client(lambda client: client.migrate())
    if migration.changed:
        say(f"migrated {migration.before or 'empty database'} -> {migration.after}")
    else:
        say(f"schema up to date (revision {migration.after})")


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Jobs by status and priority, oldest pending job, rows with vectors per type."""
    result = _with_client(lambda client: client.status())
    if as_json:
        print_json(result.as_json())
    else:
        display.print_status(result)


@app.command()
def doctor(as_json: JsonOption = False) -> None:
    """Check every link: database, pgvector, migrations, provider; with QStash, the token, the
    signing keys, a signed delivery to the webhook and a round trip. Exit 1 naming what failed
    and its fix."""
    # deferred: the doctor's HTTP client (httpx) would add a tenth of a second to every command
    from embedq.doctor import Doctor, Verdict, passed
    from embedq.providers import create_embedder

    settings = _settings()
    checks = asyncio.run(Doctor(settings, embedder_factory=create_embedder).run())
    if as_json:
        print_json({"passed": passed(checks), "checks": [c.as_json() for c in checks]})
    else:
        console.print(display.doctor_table(checks))
        for check in checks:
            if check.verdict is Verdict.FAILED:
                say(f"{check.name} failed: {check.detail}" + (f"; fix: {check.fix}" if check.fix else ""))
    if not passed(checks):
        raise typer.Exit(1)


# -- jobs ----------------------------------------------------------------------------------------

JobId = Annotated[int, typer.Argument(help="The job id (see `embedq status`).", min=1, max=MAX_JOB_ID)]


@jobs_app.command("show")
def jobs_show(job_id: JobId, as_json: JsonOption = False) -> None:
    """Show one job, with its attempts and last error."""
    display.print_job(_with_store(lambda store: operations.get_job(store, job_id)), as_json)


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobId, as_json: JsonOption = False) -> None:
    """End a job that has not finished as `dead` (it stays replayable)."""
    display.print_job(_with_store(lambda store: operations.cancel_job(store, job_id)), as_json)


@jobs_app.command("retry")
def jobs_retry(job_id: JobId, as_json: JsonOption = False) -> None:
    """Queue a failed, dead or done job again, with its attempts cleared."""
    retried = _with_store(lambda store: operations.retry_job(store, job_id))
    if retried.merged_into is not None:
        say(f"job {job_id}: its row already has pending job {retried.merged_into}; merged into it")
    display.print_job(retried.job, as_json)


# -- processes -----------------------------------------------------------------------------------

PortOption = Annotated[
    int | None, typer.Option("--port", help="Port to listen on (EMBEDQ_PORT, default 8000).", min=1, max=65535)
]
HostOption = Annotated[str | None, typer.Option("--host", help="Address to bind (EMBEDQ_HOST, default 127.0.0.1).")]


@app.command()
def listen(
    drain: Annotated[bool, typer.Option("--drain", help="Process until nothing is runnable, then exit 0.")] = False,
) -> None:
    """Claim and process jobs (local mode). Tuning: EMBEDQ_BATCH_SIZE, EMBEDQ_CONCURRENCY,
    EMBEDQ_POLL_INTERVAL, EMBEDQ_LEASE_SECONDS, EMBEDQ_BATCH_WINDOW_MS."""
    # deferred: the listener and webhook stacks (uvicorn, starlette, httpx, qstash) would add
    # about half a second to every other command
    from embedq import runner

    settings = _settings()
    totals = asyncio.run(runner.run_listener(settings, drain=drain))
    say(f"done {totals.done}, failed {totals.failed}, dead {totals.dead} ({totals.embedded_chunks} chunks embedded)")


@app.command()
def up(port: PortOption = None, host: HostOption = None) -> None:
    """Listener + webhook + schedules in one process, until stopped (SIGTERM finishes the batch in hand)."""
    from embedq import runner  # deferred: see `listen`

    settings = _settings()
    asyncio.run(runner.serve(settings, with_listener=True, port=port or settings.port, host=host or settings.host))


@app.command()
def serve(port: PortOption = None, host: HostOption = None) -> None:
    """Only the webhook QStash calls (run as many replicas as you like behind a load balancer)."""
    from embedq import runner  # deferred: see `listen`

    settings = _settings()
    asyncio.run(runner.serve(settings, with_listener=False, port=port or settings.port, host=host or settings.host))


@app.command()
def maintenance(
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Also requeue every failed job now, and the dead jobs of a transient cause (delivery, outage, "
            "rate limit): the weekly retry.",
        ),
    ] = False,
    done_days: Annotated[int, typer.Option("--done-days", help="Keep done jobs this many days.", min=0)] = 7,
    as_json: JsonOption = False,
) -> None:
    """Prune done jobs older than 7 days and searches older than 30, requeue overlooked failures."""
    report = _with_connection(
        lambda conn: run_maintenance(conn, retry_all_failed=retry_failed, done_keep_days=done_days)
    )
    if as_json:
        print_json(report.as_json())
    else:
        say(
            f"pruned {report.pruned_jobs} done jobs and {report.pruned_searches} searches; "
            f"requeued {report.requeued_failed} failed jobs"
        )


# -- search and rows -----------------------------------------------------------------------------


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for, in any language.")],
    content_type: TypesOption = None,
    k: Annotated[int, typer.Option("-k", help="How many results.", min=1, max=1000)] = 10,
    hybrid: Annotated[
        bool, typer.Option("--hybrid", help="Fuse keyword matches with the vectors (exact codes and names).")
    ] = False,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Least cosine similarity of a hit (-1 to 1).")
    ] = None,
    filter_pairs: Annotated[
        list[str] | None,
        typer.Option("--filter", help="KEY=VALUE on a column the source registered as filterable (repeatable)."),
    ] = None,
    chunks: Annotated[bool, typer.Option("--chunks", help="Chunks, not one hit per row.")] = False,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many hits (paging).", min=0)] = 0,
    as_json: JsonOption = False,
) -> None:
    """Search the embedded rows with the active model: one hit per row, best first."""
    filters = parse_filters(filter_pairs or [])
    hits = _with_client(
        lambda client: client.search(
            text,
            k=k,
            types=content_type,
            min_score=min_score,
            hybrid=hybrid,
            filters=filters,
            chunks=chunks,
            offset=offset,
            origin="cli",
        )
    )
    if as_json:
        print_json([h.as_json() for h in hits])
    else:
        console.print(display.hits_table(f"search: {text}", hits))


@app.command()
def preview(
    content_type: Annotated[str, typer.Argument(help="A registered content type.")],
    source_id: Annotated[str, typer.Argument(help="The row's key.")],
    as_json: JsonOption = False,
) -> None:
    """The text and the chunks a row is embedded as (its registration's template, chunked as
    processing does). Reads only."""
    result = _with_client(lambda client: client.preview(content_type, source_id))
    if as_json:
        print_json(result.as_json())
    else:
        display.print_preview(result)


# -- backfill, verify, replay ---------------------------------------------------------------------


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
    with display.progress_bar(f"backfill {content_type}", enabled=not as_json) as progress:

        async def run(client: AsyncClient) -> operations.Backfilled:
            async with client.connection() as conn:
                return await operations.backfill(
                    conn, content_type, priority=priority, model=model, settings=client.settings, progress=progress
                )

        result = _with_client(run)
    if as_json:
        print_json(result.as_json())
    else:
        say(f"queued {result.queued} {content_type} rows" + (f" for model {model}" if model else ""))


@app.command()
def verify(
    content_type: TypesOption = None,
    fix: Annotated[bool, typer.Option("--fix", help="Queue jobs that repair what is found.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare every registered row's current text with its stored vectors (the model EMBEDQ_MODEL
    gives: the active one, or one being filled): missing, stale, orphaned. Exit code 1 on drift."""
    with display.progress_by_kind("verify", enabled=not as_json) as progress:

        async def run(client: AsyncClient) -> verification.Verification:
            async with client.connection() as conn:
                return await verification.run(
                    conn, client.embedder(), client.settings, content_type, fix_drift=fix, progress=progress
                )

        result = _with_client(run)
    if as_json:
        print_json(result.as_json())
    else:
        console.print(display.verify_table(result.report))
        say(f"drift: {result.drift}" + (f"; queued {result.queued} repair jobs" if fix else ""))
    if result.drift:
        raise typer.Exit(1)


@app.command()
def replay(
    status_filter: Annotated[
        str | None,
        typer.Option(
            "--status", help="Comma-separated: failed, dead, done (default failed,dead; done re-embeds on purpose)."
        ),
    ] = None,
    content_type: TypesOption = None,
    since: Annotated[str | None, typer.Option(help="Only jobs that ended at or after this ISO time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only jobs that ended before this ISO time.")] = None,
    job_ids: Annotated[
        list[int] | None, typer.Option("--id", help="Only these jobs (repeatable).", min=1, max=MAX_JOB_ID)
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replayed; change nothing.")] = False,
    yes: YesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Put ended jobs back in the queue, attempts cleared (a fresh QStash deduplication id)."""
    chosen = operations.ReplayFilter.build(
        statuses=None if status_filter is None else status_filter.split(","),
        content_types=content_type,
        since=operations.parse_instant(since, "--since"),
        until=operations.parse_instant(until, "--until"),
        job_ids=job_ids,
    )

    async def run(client: AsyncClient) -> tuple[operations.ReplayPlan, operations.Replayed | None]:
        async with client.connection() as conn:
            plan = await operations.plan_replay(conn, chosen)
        if not as_json:
            console.print(display.replay_table(plan.summary(), len(plan.job_ids), dry_run))
        if dry_run or not plan.job_ids:
            return plan, None
        if not yes:
            matched = len(plan.job_ids)
            _confirm(f"Replay {matched} jobs?", f"{matched} jobs match; pass --yes to replay them without a prompt")
        with display.progress_bar("replay", enabled=not as_json) as progress:
            return plan, await operations.replay(JobStore(await client.pool()), plan.job_ids, progress)

    plan, replayed = _with_client(run)
    if as_json:
        print_json(display.replay_json(plan, replayed, dry_run))
    elif replayed is not None:
        say(f"replayed {replayed.replayed} jobs ({replayed.merged} merged into a pending job of the same row)")


# -- models --------------------------------------------------------------------------------------


@models_app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """Models with vectors in the database: the active one is what search uses; a filling one
    (embedq backfill --model) follows row changes too, until it is activated or dropped."""
    found = _with_connection(models.list_models)
    if as_json:
        print_json([m.as_json() for m in found])
    else:
        console.print(display.models_table(found))


@models_app.command("drop")
def models_drop(
    name: Annotated[str, typer.Argument(help="A model that is not the active one.")], yes: YesOption = False
) -> None:
    """Delete a model's vectors, index and queued jobs (never the active model's)."""

    async def run(conn: asyncpg.Connection) -> models.Dropped:
        await models.check_droppable(conn, name)
        if not yes:
            _confirm(f"Drop every vector of model {name!r}?", f"pass --yes to drop every vector of model {name!r}")
        return await models.drop_model(conn, name)

    dropped = _with_connection(run)
    say(f"dropped model {name}: {dropped.vectors} vectors and {dropped.jobs} jobs deleted")


@models_app.command("activate")
def models_activate(name: Annotated[str, typer.Argument(help="A model from `embedq models list`.")]) -> None:
    """Make search use this model from now on. The previous one keeps its vectors (search it with
    --model) but no longer follows row changes; `embedq models drop` removes them."""
    activated = _with_connection(lambda conn: models.activate_model(conn, name))
    say(f"active model: {activated.model.name} ({activated.model.dimensions} dimensions)")
    if activated.queued:
        display.warn(
            f"warning: {activated.queued} jobs of {name} are still queued; search misses those rows until they are done"
        )


# -- the sample application ----------------------------------------------------------------------


@app.command()
def sample(
    rows: Annotated[bool, typer.Option("--rows/--no-rows", help="Also write the sample rows (once).")] = True,
) -> None:
    """Create the sample application (schema embedq_sample: profiles, courses, lessons, posts,
    comments), registered as sources, with its rows. Never needed for your own tables."""

    written = _with_connection(lambda conn: sample_app.create(conn, with_rows=rows))
    say(
        "sample application ready in schema embedq_sample"
        + ("; rows written: " + ", ".join(f"{n} {t}s" for t, n in written.items()) if written else "")
    )


@app.command()
def demo() -> None:
    """Migrate, write sample rows, watch their embeddings appear, run sample searches."""
    from embedq.demo import run_demo  # deferred: it runs a listener (see `listen`)

    settings = _settings()
    asyncio.run(run_demo(settings, console))


# -- entry point ---------------------------------------------------------------------------------


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
