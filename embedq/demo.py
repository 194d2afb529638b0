"""`embedq demo`: the whole product in one command, on the embedded database by default."""

from __future__ import annotations

import asyncio
import logging

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from embedq import db
from embedq.client import AsyncClient
from embedq.display import hits_table
from embedq.listener import Listener
from embedq.queries import query
from embedq.sample import create_sample_app, insert_sample_rows, sample_rows_present, sample_searches
from embedq.settings import Settings


async def run_demo(settings: Settings, console: Console) -> None:
    # The progress bar tells the story; per-batch log lines would tear it apart.
    logging.getLogger("embedq").setLevel(max(logging.WARNING, logging.getLogger().level))
    async with AsyncClient(settings=settings, application_name=f"{settings.application_name}-demo") as client:
        dsn = await client.database_url()
        where = "embedded PostgreSQL in " + str(settings.data_dir) if settings.embedded else db.describe(dsn)
        console.print(f"[bold]embedq demo[/] on {where}")
        migration = await client.migrate()  # a clear one-line error if the database is unreachable
        console.print(f"schema at revision {migration.after}")

        async with client.connection() as conn:
            await create_sample_app(conn)
            if not await sample_rows_present(conn):
                counts = await insert_sample_rows(conn)
                console.print("sample rows written: " + ", ".join(f"{n} {t}s" for t, n in counts.items()))
            else:
                console.print("sample rows already present; embedding whatever is queued")
            await conn.execute(query("jobs_ingest"))
            total = await conn.fetchval(query("jobs_unfinished_count"))

            embedder = client.embedder()
            console.print(f"loading {embedder.model} ({embedder.provider}) ...")
            warm = getattr(embedder, "warm", None)
            if warm is not None:
                await asyncio.to_thread(warm)
            listener = Listener(dsn, embedder, settings)
            work = asyncio.create_task(listener.run(drain=True))
            with Progress(
                TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
            ) as progress:
                task = progress.add_task("jobs", total=total)
                while not work.done():
                    await asyncio.wait({work}, timeout=0.25)
                    left = await conn.fetchval(query("jobs_unfinished_count"))
                    progress.update(task, completed=max(total - left, 0))
            totals = work.result()
        console.print(
            f"{totals.done} jobs done, {totals.embedded_chunks} chunks embedded, "
            f"{totals.failed} failed, {totals.dead} dead"
        )

        for sample in sample_searches():
            types = [sample.content_type] if sample.content_type else None
            hits = await client.search(sample.text, k=3, types=types)
            title = f"search: {sample.text}" + (f"  (type: {sample.content_type})" if sample.content_type else "")
            console.print(hits_table(title, hits))
        console.print('try: [bold]embedq search "how do I make bread"[/], [bold]embedq status[/]')
