"""The Python API against the real database: an application's own table registered, its rows
embedded by a real listener, searched and waited for through embedq.AsyncClient / embedq.Client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import psycopg
import pytest

import embedq
from embedq import client as client_module
from embedq.errors import DatabaseUnavailable, InvalidInput, NotFound
from embedq.listener import Listener
from embedq.rows import RowState
from embedq.testing import HashEmbedder

ARTICLES = """
CREATE TABLE public.articles (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title text NOT NULL,
    body  text,
    views integer NOT NULL DEFAULT 0
)
"""


@pytest.fixture
async def articles(conn):
    await conn.execute(ARTICLES)


@pytest.fixture
async def client(settings, articles):
    async with embedq.AsyncClient(settings=settings, embedder=HashEmbedder()) as client:
        yield client


async def write_article(conn, title: str, body: str = "") -> int:
    return await conn.fetchval("INSERT INTO public.articles (title, body) VALUES ($1, $2) RETURNING id", title, body)


async def drain(dsn, settings) -> None:
    await Listener(dsn, HashEmbedder(), settings).run(drain=True)


@pytest.fixture
def empty_database(embedded_server):
    """A database with nothing in it: no pgvector type, no embedq schema."""
    with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS embedq_client_empty")
        admin.execute("CREATE DATABASE embedq_client_empty")
    yield f"postgresql://postgres@/embedq_client_empty?host={embedded_server.host}&port=5432"
    with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS embedq_client_empty WITH (FORCE)")


async def test_a_registered_table_is_embedded_and_searched(conn, dsn, settings, client):
    await client.register_source("article", "public.articles", ["title", "body"], template="{title}\n\n{body}")
    bread = await write_article(conn, "Sourdough bread", "Feed the starter the night before.")
    await write_article(conn, "Knife skills", "Keep the blade sharp.")
    assert (await client.row_status("article", bread)).state is RowState.QUEUED

    await drain(dsn, settings)

    status = await client.row_status("article", bread)
    assert status.state is RowState.CURRENT and status.chunks == 1
    hits = await client.search("Sourdough bread\n\nFeed the starter the night before.", k=5)
    assert (hits[0].content_type, hits[0].source_id, hits[0].chunk_index) == ("article", str(bread), 0)
    assert hits[0].score == pytest.approx(1.0)  # the very text that was embedded
    assert hits[0].content.startswith("Sourdough bread")
    assert hits[0].score > hits[1].score
    anything = await client.search("anything", types="article")
    above_all = max(h.similarity for h in anything) + 0.001
    assert [h.source_id for h in await client.search("anything", types="article", min_score=above_all)] == []
    assert len(await client.search("anything", types="article", min_score=above_all - 0.002)) >= 1
    assert len(await client.search("anything", types=["article"], k=1)) == 1

    preview = await client.preview("article", bread)
    assert preview.text == "Sourdough bread\n\nFeed the starter the night before."
    stored_hash = await conn.fetchval("SELECT content_hash FROM embedq.embeddings WHERE source_id = $1", str(bread))
    assert [c.content_hash for c in preview.chunks] == [stored_hash]

    summary = await client.status()
    assert summary.vectors["article"] == {"rows": 2, "chunks": 2}
    assert summary.totals["done"] == 2


async def test_backfill_queues_the_rows_written_before_the_registration(conn, dsn, settings, client):
    early = [await write_article(conn, title) for title in ("one", "two", "three")]
    await client.register_source("article", "articles", ["title"])
    assert (await client.row_status("article", early[0])).state is RowState.MISSING
    assert await client.backfill("article") == 3
    assert (await client.row_status("article", early[0])).state is RowState.QUEUED
    await drain(dsn, settings)
    assert all([(await client.row_status("article", i)).current for i in early])


async def test_unregister_ends_the_queued_jobs_and_stops_the_triggers(conn, client):
    await client.register_source("article", "articles", ["title"])
    article = await write_article(conn, "queued, then unregistered")
    await conn.execute("SELECT embedq.jobs_ingest()")
    await client.unregister_source("article")
    assert (await client.row_status("article", article)).state is RowState.DEAD
    await write_article(conn, "after unregistering")
    assert await conn.fetchval("SELECT count(*) FROM embedq.job_inbox") == 0


@pytest.mark.parametrize(
    ("table", "fields", "options", "fragment"),
    [
        ("no_such_table", ["title"], {}, 'relation "no_such_table" does not exist'),
        ("articles", ["title", "no_such_column"], {}, "column no_such_column does not exist"),
        ("articles", ["title"], {"template": "{title} {views}"}, "template names views"),
        ("articles", ["title"], {"priority": 0}, "priority"),
        ("articles", ["title"], {"key_column": "title"}, "has no unique index"),
        ("articles", "title", {}, "must be a list of column names"),
    ],
)
async def test_a_bad_registration_raises_invalid_input(client, table, fields, options, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        await client.register_source("article", table, fields, **options)


async def test_errors_a_caller_can_cause(client):
    with pytest.raises(InvalidInput, match="not registered"):
        await client.unregister_source("nothing")
    with pytest.raises(InvalidInput, match="unknown content type 'nothing'"):
        await client.backfill("nothing")
    with pytest.raises(InvalidInput, match="nothing has been embedded yet"):
        await client.search("bread")
    with pytest.raises(NotFound, match="model 'other' is not known"):
        await client.backfill("course", model="other")


async def test_wait_until_embedded_wakes_on_the_job_event(conn, dsn, settings, client, monkeypatch):
    # No safety-net poll during the test: only the NOTIFY of the finished job can end the wait.
    monkeypatch.setattr(client_module, "WAIT_POLL_SECONDS", 3600.0)
    await client.register_source("article", "articles", ["title"])
    article = await write_article(conn, "Waiting for its vectors")
    listener = Listener(dsn, HashEmbedder(), settings)
    running = asyncio.create_task(listener.run())
    try:
        assert await client.wait_until_embedded("article", article, timeout=120)
    finally:
        listener.stop()
        await running
    assert (await client.row_status("article", article)).current


async def test_wait_until_embedded_gives_up_at_the_timeout_or_on_a_dead_job(conn, client):
    await client.register_source("article", "articles", ["title"])
    article = await write_article(conn, "no listener runs")
    assert await client.wait_until_embedded("article", article, timeout=0.5) is False

    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("SELECT embedq.jobs_cancel(id) FROM embedq.jobs")
    # a dead job will not become current by waiting: answered at once, whatever the timeout
    finished = asyncio.wait_for(client.wait_until_embedded("article", article, timeout=3600), timeout=60)
    assert await finished is False


async def test_a_pool_opened_before_migrate_searches_after_it(empty_database, settings):
    async with embedq.AsyncClient(empty_database, settings=settings, embedder=HashEmbedder()) as client:
        with pytest.raises(DatabaseUnavailable, match="run `embedq migrate` first"):
            await client.status()  # the pool is open now, before the vector type exists
        migration = await client.migrate()
        assert migration.before is None and migration.changed
        assert not (await client.migrate()).changed
        async with client.connection() as conn:
            await conn.execute(ARTICLES)
        await client.register_source("article", "articles", ["title"])
        async with client.connection() as conn:
            article = await write_article(conn, "embedded after the migration")
        await drain(empty_database, settings)
        hits = await client.search("embedded after the migration")
        assert [h.source_id for h in hits] == [str(article)]


async def test_the_blocking_client_works_inside_a_running_event_loop(conn, dsn, settings, articles):
    with embedq.Client(settings=settings, embedder=HashEmbedder()) as client:
        client.register_source("article", "articles", ["title"])
        article = await write_article(conn, "from a coroutine, through the blocking client")
        await drain(dsn, settings)
        assert client.wait_until_embedded("article", article, timeout=30)
        assert [h.source_id for h in client.search("from a coroutine, through the blocking client")] == [str(article)]
    with pytest.raises(InvalidInput, match="closed"):
        client.status()


SCRIPT = """
import embedq
client = embedq.Client()
print(client.database_url() == {dsn!r}, client.status().totals["pending"])
{close}
"""


@pytest.mark.parametrize("close", ["client.close()", "# forgotten: closed at exit"])
def test_the_blocking_client_from_a_plain_script(dsn, close):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env["DATABASE_URL"] = dsn  # dsn=None: the client reads DATABASE_URL
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("INSERT INTO embedq_sample.courses (title) VALUES ('a'), ('b')")
        db.execute("SELECT embedq.jobs_ingest()")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT.format(dsn=dsn, close=close))],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "2"]
    assert result.stderr == ""
