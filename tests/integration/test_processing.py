"""Rows in, vectors out, on the real database with a zero-cost embedder."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from embedq import metrics
from embedq.errors import RetryableError
from embedq.listener import Listener, ListenerConfig
from embedq.testing import HashEmbedder

MODEL = "hash-test"


def listener_for(dsn, settings, embedder, **config) -> Listener:
    defaults = dict(batch_size=16, batch_window=0.0, poll_interval=0.2, lease_seconds=30, rescue_interval=0.2)
    return Listener(dsn, embedder, settings, ListenerConfig(**{**defaults, **config}))


async def drain(dsn, settings, embedder, **config):
    return await listener_for(dsn, settings, embedder, **config).run(drain=True)


async def vectors(conn, content_type: str, source_id) -> list:
    return await conn.fetch(
        "SELECT chunk_index, content, content_hash FROM embedq.embeddings "
        "WHERE content_type = $1 AND source_id = $2 AND model = $3 ORDER BY chunk_index",
        content_type,
        str(source_id),
        MODEL,
    )


async def statuses(conn) -> dict[str, int]:
    await conn.execute("SELECT embedq.jobs_ingest()")
    return {r[0]: r[1] for r in await conn.fetch("SELECT status::text, count(*) FROM embedq.jobs GROUP BY 1")}


async def test_rows_written_become_vectors_for_every_type(conn, dsn, settings):
    profile = await conn.fetchval(
        "INSERT INTO embedq_sample.profiles (display_name, bio, interests) "
        "VALUES ('Ada', 'Mathematician', '{maths,engines}') RETURNING id"
    )
    course = await conn.fetchval(
        "INSERT INTO embedq_sample.courses (title, tags) VALUES ('SQL basics', '{db}') RETURNING id"
    )
    lesson = await conn.fetchval(
        "INSERT INTO embedq_sample.lessons (course_id, title, content) VALUES ($1, 'Joins', 'Inner "
        "joins') RETURNING id",
        course,
    )
    post = await conn.fetchval(
        "INSERT INTO embedq_sample.posts (author_id, title, body) VALUES ($1, 'Hi', 'Hello') RETURNING id", profile
    )
    comment = await conn.fetchval(
        "INSERT INTO embedq_sample.comments (post_id, body) VALUES ($1, 'Nice post') RETURNING id", post
    )
    embedder = HashEmbedder()

    totals = await drain(dsn, settings, embedder)

    assert totals.done == 5 and totals.dead == 0
    for content_type, row_id in [
        ("profile", profile),
        ("course", course),
        ("lesson", lesson),
        ("post", post),
        ("comment", comment),
    ]:
        stored = await vectors(conn, content_type, row_id)
        assert len(stored) == 1, content_type
    assert "Mathematician" in (await vectors(conn, "profile", profile))[0]["content"]
    assert await statuses(conn) == {"done": 5}
    assert await conn.fetchval("SELECT count(*) FROM embedq.models WHERE name = $1 AND active", MODEL) == 1


async def test_an_edit_re_embeds_and_an_unchanged_text_makes_no_provider_call(conn, dsn, settings):
    course = await conn.fetchval(
        "INSERT INTO embedq_sample.courses (title, description) VALUES ('Bread', 'Sourdough') RETURNING id"
    )
    embedder = HashEmbedder()
    await drain(dsn, settings, embedder)
    before = await vectors(conn, "course", course)

    await conn.execute("UPDATE embedq_sample.courses SET description = 'Rye bread' WHERE id = $1", course)
    await drain(dsn, settings, embedder)
    after = await vectors(conn, "course", course)
    assert "Rye bread" in after[0]["content"] and after[0]["content_hash"] != before[0]["content_hash"]

    calls = len(embedder.calls)
    await conn.execute("SELECT * FROM embedq.backfill('course', NULL, 100)")  # queue it again, text unchanged
    totals = await drain(dsn, settings, embedder)
    assert totals.done == 1
    assert len(embedder.calls) == calls  # no provider call at all
    assert await vectors(conn, "course", course) == after


async def test_a_delete_removes_the_vectors(conn, dsn, settings):
    post = await conn.fetchval("INSERT INTO embedq_sample.posts (title, body) VALUES ('Bye', 'Soon gone') RETURNING id")
    await drain(dsn, settings, HashEmbedder())
    assert len(await vectors(conn, "post", post)) == 1
    await conn.execute("DELETE FROM embedq_sample.posts WHERE id = $1", post)
    totals = await drain(dsn, settings, HashEmbedder())
    assert totals.done == 1
    assert await vectors(conn, "post", post) == []


async def test_unknown_content_type_is_dead_with_a_clear_error(conn, dsn, settings):
    await conn.execute("INSERT INTO embedq.jobs (content_type, source_id) VALUES ('mystery', '1')")
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('fine') RETURNING id")
    totals = await drain(dsn, settings, HashEmbedder())
    assert (totals.done, totals.dead) == (1, 1)
    row = await conn.fetchrow("SELECT status::text, last_error FROM embedq.jobs WHERE content_type = 'mystery'")
    assert row["status"] == "dead"
    assert "unknown content type 'mystery'" in row["last_error"]
    assert len(await vectors(conn, "course", course)) == 1


async def test_a_row_with_no_text_is_done_without_vectors(conn, dsn, settings):
    post = await conn.fetchval("INSERT INTO embedq_sample.posts (title, body) VALUES ('  ', NULL) RETURNING id")
    embedder = HashEmbedder()
    totals = await drain(dsn, settings, embedder)
    assert totals.done == 1 and embedder.calls == []
    assert await vectors(conn, "post", post) == []


async def test_text_that_empties_removes_old_vectors(conn, dsn, settings):
    post = await conn.fetchval("INSERT INTO embedq_sample.posts (title, body) VALUES ('T', 'B') RETURNING id")
    await drain(dsn, settings, HashEmbedder())
    await conn.execute("UPDATE embedq_sample.posts SET title = '', body = NULL WHERE id = $1", post)
    await drain(dsn, settings, HashEmbedder())
    assert await vectors(conn, "post", post) == []


async def test_a_1mb_text_is_chunked_and_every_chunk_stored(conn, dsn, settings):
    words = [f"word{i % 997}" for i in range(180_000)]
    content = " ".join(words)
    assert len(content) > 1_000_000
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('Big') RETURNING id")
    lesson = await conn.fetchval(
        "INSERT INTO embedq_sample.lessons (course_id, title, content) VALUES ($1, 'Long', $2) RETURNING id",
        course,
        content,
    )
    embedder = HashEmbedder()
    test_settings = dataclasses.replace(settings, chunk_tokens=400, chunk_overlap_tokens=40)
    totals = await drain(dsn, test_settings, embedder)
    assert totals.dead == 0
    stored = await vectors(conn, "lesson", lesson)
    assert len(stored) >= 180_000 // 400
    assert [r["chunk_index"] for r in stored] == list(range(len(stored)))
    assert all(embedder.count_tokens(r["content"]) <= 400 for r in stored)
    assert "word996" in " ".join(r["content"] for r in stored)

    # shrinking the text trims the surplus chunks
    await conn.execute("UPDATE embedq_sample.lessons SET content = 'short now' WHERE id = $1", lesson)
    await drain(dsn, test_settings, embedder)
    assert len(await vectors(conn, "lesson", lesson)) == 1


async def test_control_characters_and_replacement_chars_are_embedded(conn, dsn, settings):
    post = await conn.fetchval(
        "INSERT INTO embedq_sample.posts (title, body) VALUES ($1, $2) RETURNING id",
        "Bad\x01bytes\x7f",
        "caf\ufffd with \u200b zero width",
    )
    totals = await drain(dsn, settings, HashEmbedder())
    assert totals.done == 1
    assert "\x01" not in (await vectors(conn, "post", post))[0]["content"]


async def test_invalid_utf8_never_enters_the_table_nor_the_queue(conn):
    import asyncpg

    with pytest.raises(asyncpg.CharacterNotInRepertoireError):
        await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES (convert_from('\\xfffe'::bytea, 'UTF8'))")
    assert await conn.fetchval("SELECT count(*) FROM embedq.job_inbox") == 0


async def test_transient_failures_retry_with_backoff_then_die(conn, dsn, settings):
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('flaky') RETURNING id")
    embedder = HashEmbedder()
    embedder.fail_next = [RetryableError("provider overloaded (503)")]
    fast = dataclasses.replace(settings, retry_base_seconds=0.05, retry_max_seconds=0.05)
    listener_settings = {"max_attempts": 2}  # EMBEDQ_MAX_ATTEMPTS of the listener

    first = await drain(dsn, fast, embedder, **listener_settings)
    job = await conn.fetchrow("SELECT status::text, attempts, last_error, run_after > now() AS later FROM embedq.jobs")
    assert (first.failed, job["status"], job["attempts"], job["later"]) == (1, "failed", 1, True)
    assert job["last_error"] == "provider overloaded (503)"

    await asyncio.sleep(0.1)
    embedder.fail_next = [RetryableError("provider overloaded (503)")]
    await drain(dsn, fast, embedder, **listener_settings)
    job = await conn.fetchrow(
        "SELECT status::text, attempts, max_attempts, finished_at IS NOT NULL AS finished FROM embedq.jobs"
    )
    assert tuple(job) == ("dead", 2, 2, True)
    assert await vectors(conn, "course", course) == []


async def test_a_poison_row_dies_alone(conn, dsn, settings):
    post = await conn.fetchval("INSERT INTO embedq_sample.posts (title, body) VALUES ('ok', 'fine') RETURNING id")
    poison = await conn.fetchval(
        "INSERT INTO embedq_sample.posts (title, body) VALUES ('bad', 'POISON here') RETURNING id"
    )
    other = await conn.fetchval(
        "INSERT INTO embedq_sample.posts (title, body) VALUES ('ok2', 'also fine') RETURNING id"
    )
    embedder = HashEmbedder()
    embedder.poison_marker = "POISON"
    totals = await drain(dsn, settings, embedder)
    assert (totals.done, totals.dead) == (2, 1)
    assert len(await vectors(conn, "post", post)) == 1 and len(await vectors(conn, "post", other)) == 1
    dead = await conn.fetchrow("SELECT source_id, last_error FROM embedq.jobs WHERE status = 'dead'")
    assert dead["source_id"] == str(poison) and "POISON" in dead["last_error"]


class SlowEmbedder(HashEmbedder):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.started = asyncio.Event()

    async def embed_documents(self, texts):
        self.started.set()
        await asyncio.sleep(self.delay)
        return await super().embed_documents(texts)


async def test_a_crashed_listener_loses_nothing(conn, dsn, settings):
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'c' || g FROM generate_series(1, 40) g")
    slow = SlowEmbedder(delay=30)
    crashed = listener_for(dsn, settings, slow, lease_seconds=1, batch_size=10)
    task = asyncio.create_task(crashed.run())
    await asyncio.wait_for(slow.started.wait(), 10)
    task.cancel()  # mid-batch, like a kill: no cleanup of its claims
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await statuses(conn)).get("processing") == 10

    await asyncio.sleep(1.2)  # the lease runs out
    survivor = HashEmbedder()
    totals = await listener_for(dsn, settings, survivor, lease_seconds=30).run(drain=True)
    assert totals.done == 40
    assert await statuses(conn) == {"done": 40}
    assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == 40
    rescued = await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE attempts = 2")
    assert rescued == 10


async def test_two_listeners_never_embed_the_same_job_twice(conn, dsn, settings):
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'course ' || g FROM generate_series(1, 300) g")
    first, second = SlowEmbedder(delay=0.01), SlowEmbedder(delay=0.01)
    a = listener_for(dsn, settings, first, batch_size=8)
    b = listener_for(dsn, settings, second, batch_size=8)
    runs = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        for _ in range(400):
            if (await statuses(conn)).get("done") == 300:
                break
            await asyncio.sleep(0.05)
    finally:
        a.stop()
        b.stop()
        totals_a, totals_b = await asyncio.gather(*runs)
    assert totals_a.done + totals_b.done == 300
    texts_a = [t for call in first.calls for t in call]
    texts_b = [t for call in second.calls for t in call]
    assert len(texts_a) + len(texts_b) == 300
    assert not set(texts_a) & set(texts_b)
    assert totals_a.done > 0 and totals_b.done > 0


async def test_a_cancelled_claim_writes_nothing(conn, dsn, settings):
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('to cancel') RETURNING id")
    slow = SlowEmbedder(delay=0.5)
    work = asyncio.create_task(drain(dsn, settings, slow))
    await asyncio.wait_for(slow.started.wait(), 10)
    job_id = await conn.fetchval("SELECT id FROM embedq.jobs WHERE status = 'processing'")
    await conn.execute("SELECT * FROM embedq.jobs_cancel($1)", job_id)
    totals = await work
    assert (totals.done, totals.lost) == (0, 1)
    assert await vectors(conn, "course", course) == []
    assert await conn.fetchval("SELECT status::text FROM embedq.jobs WHERE id = $1", job_id) == "dead"


async def test_a_running_listener_wakes_on_notify(conn, dsn, settings):
    listener = listener_for(dsn, settings, HashEmbedder(), poll_interval=60)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.ready.wait(), 10)
        await asyncio.sleep(0.3)  # the notifier is listening
        course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('wake up') RETURNING id")
        for _ in range(100):
            if await vectors(conn, "course", course):
                break
            await asyncio.sleep(0.05)
        assert len(await vectors(conn, "course", course)) == 1  # long before the 60 s poll
    finally:
        listener.stop()
        await asyncio.wait_for(task, 10)


async def test_filtered_search_still_returns_k_rows(conn, dsn, settings):
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'course ' || g FROM generate_series(1, 600) g")
    await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'post ' || g FROM generate_series(1, 25) g")
    embedder = HashEmbedder()
    await drain(dsn, settings, embedder, batch_size=200, hnsw_min_rows=500)
    assert await conn.fetchval("SELECT embedq.model_index_state('hash-test')") == "ready"
    from embedq.search import search

    hits = await search(conn, embedder, "anything at all", k=20, content_types=["post"])
    assert len(hits) == 20 and {h.content_type for h in hits} == {"post"}
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    stored_text = await conn.fetchval(
        "SELECT content FROM embedq.embeddings WHERE source_id = '17' AND content_type = 'course'"
    )
    exact = await search(conn, embedder, stored_text, k=1)
    assert (exact[0].content_type, exact[0].source_id) == ("course", "17")
    assert await conn.fetchval("SELECT count(*) FROM embedq.search_log") == 2
    plan = "\n".join(
        r[0]
        for r in await conn.fetch(
            "EXPLAIN SELECT * FROM embedq.embeddings e WHERE e.model = 'hash-test' "
            "ORDER BY e.embedding::vector(16) <=> array_fill(0.1, ARRAY[16])::vector(16) LIMIT 5"
        )
    )
    assert "embeddings_hnsw_" in plan


async def test_the_hnsw_index_is_built_once_the_model_has_enough_vectors(conn, dsn, settings):
    from embedq.search import search

    await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'post ' || g FROM generate_series(1, 30) g")
    embedder = HashEmbedder()
    await drain(dsn, settings, embedder, hnsw_min_rows=50)
    assert await conn.fetchval("SELECT embedq.model_index_state('hash-test')") == "missing"
    # below the threshold search is an exact scan, so the nearest row is always found
    stored_text = await conn.fetchval("SELECT content FROM embedq.embeddings WHERE source_id = '7'")
    assert (await search(conn, embedder, stored_text, k=1))[0].source_id == "7"

    listener = listener_for(dsn, settings, embedder, hnsw_min_rows=50)
    running = asyncio.create_task(listener.run())
    try:
        await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'more ' || g FROM generate_series(1, 30) g")
        for _ in range(200):
            if await conn.fetchval("SELECT embedq.model_index_state('hash-test')") == "ready":
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval("SELECT embedq.model_index_state('hash-test')") == "ready"
    finally:
        listener.stop()
        await running


async def test_an_invalid_index_left_by_a_failed_build_is_rebuilt(conn, dsn, settings):
    from embedq.listener.indexer import ensure_index

    await conn.execute("INSERT INTO embedq_sample.posts (title) SELECT 'post ' || g FROM generate_series(1, 20) g")
    embedder = HashEmbedder()
    await drain(dsn, settings, embedder, hnsw_min_rows=1000)
    name = await conn.fetchval("SELECT embedq._model_index_name('hash-test')")
    await conn.execute(await conn.fetchval("SELECT embedq.model_index_ddl('hash-test')"))
    await conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = $1::regclass", f"embedq.{name}")
    assert await conn.fetchval("SELECT embedq.model_index_state('hash-test')") == "invalid"
    from embedq import db

    pool = await db.create_pool(dsn, "embedq-tests", max_size=2)
    try:
        assert await ensure_index(pool, "hash-test", min_rows=10) == "ready"
    finally:
        await pool.close()


async def test_low_priority_jobs_wait_briefly_to_share_a_batch(conn, dsn, settings):
    post = await conn.fetchval("INSERT INTO embedq_sample.posts (title) VALUES ('p') RETURNING id")
    await drain(dsn, settings, HashEmbedder())
    listener = listener_for(dsn, settings, HashEmbedder(), batch_window=1.5, poll_interval=60)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.ready.wait(), 10)
        await asyncio.sleep(0.3)
        await conn.execute(
            "INSERT INTO embedq_sample.comments (post_id, body) VALUES ($1, 'first')", post
        )  # priority 5
        await asyncio.sleep(0.3)
        await conn.execute("INSERT INTO embedq_sample.comments (post_id, body) VALUES ($1, 'second')", post)
        for _ in range(100):
            if (await statuses(conn)).get("done", 0) == 3:
                break
            await asyncio.sleep(0.05)
    finally:
        listener.stop()
        await task
    assert listener.totals.batches == 1 and listener.totals.done == 2


async def test_urgent_jobs_do_not_wait_for_the_batch_window(conn, dsn, settings):
    listener = listener_for(dsn, settings, HashEmbedder(), batch_window=30, poll_interval=60)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.ready.wait(), 10)
        await asyncio.sleep(0.3)
        course = await conn.fetchval(
            "INSERT INTO embedq_sample.courses (title) VALUES ('urgent') RETURNING id"
        )  # priority 2
        for _ in range(100):
            if await vectors(conn, "course", course):
                break
            await asyncio.sleep(0.05)
        assert len(await vectors(conn, "course", course)) == 1  # long before the 30 s window
    finally:
        listener.stop()
        await task


async def test_the_notifier_reconnects_after_its_connection_is_killed(conn, dsn, settings):
    reconnects = metrics.LISTEN_RECONNECTS._value.get()
    listener = listener_for(dsn, settings, HashEmbedder(), poll_interval=60)
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(listener.ready.wait(), 10)
        notify_pid = (
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'embedq-notify' "
            "AND datname = current_database() AND state = 'idle'"
        )
        old_pid = None
        for _ in range(100):
            old_pid = await conn.fetchval(notify_pid)
            if old_pid:
                break
            await asyncio.sleep(0.05)
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        for _ in range(200):  # wait until a new connection is listening
            new_pid = await conn.fetchval(notify_pid + " AND pid <> $1", old_pid)
            if new_pid:
                break
            await asyncio.sleep(0.05)
        assert new_pid
        await asyncio.sleep(0.3)
        course = await conn.fetchval(
            "INSERT INTO embedq_sample.courses (title) VALUES ('after reconnect') RETURNING id"
        )
        for _ in range(100):
            if await vectors(conn, "course", course):
                break
            await asyncio.sleep(0.05)
        assert len(await vectors(conn, "course", course)) == 1  # woken by NOTIFY, not the 60 s poll
        assert metrics.LISTEN_RECONNECTS._value.get() == reconnects + 1
    finally:
        listener.stop()
        await task


async def test_a_batch_longer_than_its_lease_keeps_it(conn, dsn, settings):
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('slow') RETURNING id")
    slow = SlowEmbedder(delay=2.5)
    listener = listener_for(dsn, settings, slow, lease_seconds=0.6, rescue_interval=0.1)
    task = asyncio.create_task(listener.run())  # its own rescuer runs every 0.1 s
    try:
        for _ in range(200):
            if await vectors(conn, "course", course):
                break
            await asyncio.sleep(0.05)
    finally:
        listener.stop()
        await task
    job = await conn.fetchrow("SELECT status::text, attempts, last_error FROM embedq.jobs")
    assert tuple(job) == ("done", 1, None)  # never rescued, never started twice
    assert len(slow.calls) == 1 and listener.totals.lost == 0
