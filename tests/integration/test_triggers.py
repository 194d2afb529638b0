"""Triggers on the sample tables queue the right jobs, and only when an embedded field changed."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import psycopg
import pytest

SAMPLE_ROWS = {
    # content type: (insert statement, priority, update of an embedded field, update of another column)
    "profile": (
        "INSERT INTO embedq_sample.profiles (display_name, bio) VALUES ('Ada', 'Mathematician') RETURNING id",
        2,
        "UPDATE embedq_sample.profiles SET bio = 'Analyst' WHERE id = $1",
        "UPDATE embedq_sample.profiles SET last_seen_at = now(), avatar_url = 'x.png' WHERE id = $1",
    ),
    "course": (
        "INSERT INTO embedq_sample.courses (title, tags) VALUES ('SQL', '{db}') RETURNING id",
        2,
        "UPDATE embedq_sample.courses SET tags = '{db,sql}' WHERE id = $1",
        "UPDATE embedq_sample.courses SET price_cents = 990, updated_at = now() WHERE id = $1",
    ),
    "lesson": (
        "INSERT INTO embedq_sample.lessons (course_id, title) VALUES ((INSERT_COURSE), 'Joins') RETURNING id",
        3,
        "UPDATE embedq_sample.lessons SET content = 'Inner and outer joins' WHERE id = $1",
        "UPDATE embedq_sample.lessons SET position = 7, updated_at = now() WHERE id = $1",
    ),
    "post": (
        "INSERT INTO embedq_sample.posts (title, body) VALUES ('Hello', 'World') RETURNING id",
        4,
        "UPDATE embedq_sample.posts SET title = 'Hello again' WHERE id = $1",
        "UPDATE embedq_sample.posts SET view_count = view_count + 1 WHERE id = $1",
    ),
    "comment": (
        "INSERT INTO embedq_sample.comments (post_id, body) VALUES ((INSERT_POST), 'Nice') RETURNING id",
        5,
        "UPDATE embedq_sample.comments SET body = 'Very nice' WHERE id = $1",
        "UPDATE embedq_sample.comments SET like_count = 3 WHERE id = $1",
    ),
}


async def insert_sample(conn: asyncpg.Connection, content_type: str) -> int:
    statement = SAMPLE_ROWS[content_type][0]
    if "INSERT_COURSE" in statement:
        course_id = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('Parent') RETURNING id")
        statement = statement.replace("(INSERT_COURSE)", str(course_id))
    if "INSERT_POST" in statement:
        post_id = await conn.fetchval("INSERT INTO embedq_sample.posts (title) VALUES ('Parent') RETURNING id")
        statement = statement.replace("(INSERT_POST)", str(post_id))
    row_id = await conn.fetchval(statement)
    return row_id


async def jobs_for(conn, content_type: str, source_id: int | str):
    await conn.execute("SELECT embedq.jobs_ingest()")
    return await conn.fetch(
        "SELECT op::text, priority, status::text FROM embedq.jobs "
        "WHERE content_type = $1 AND source_id = $2 ORDER BY id",
        content_type,
        str(source_id),
    )


async def mark_all_done(conn) -> None:
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now()")


@pytest.mark.parametrize("content_type", list(SAMPLE_ROWS))
async def test_insert_queues_an_upsert_with_the_source_priority(conn, content_type):
    row_id = await insert_sample(conn, content_type)
    jobs = await jobs_for(conn, content_type, row_id)
    assert [tuple(j) for j in jobs] == [("upsert", SAMPLE_ROWS[content_type][1], "pending")]


@pytest.mark.parametrize("content_type", list(SAMPLE_ROWS))
async def test_only_embedded_fields_queue_work(conn, content_type):
    row_id = await insert_sample(conn, content_type)
    await mark_all_done(conn)
    _, _, embedded_update, other_update = SAMPLE_ROWS[content_type]

    await conn.execute(other_update, row_id)
    assert await jobs_for(conn, content_type, row_id) == [("upsert", SAMPLE_ROWS[content_type][1], "done")]

    await conn.execute(embedded_update, row_id)
    jobs = await jobs_for(conn, content_type, row_id)
    assert [tuple(j) for j in jobs][-1] == ("upsert", SAMPLE_ROWS[content_type][1], "pending")
    assert len(jobs) == 2


async def test_an_update_writing_the_same_values_queues_nothing(conn):
    row_id = await insert_sample(conn, "course")
    await mark_all_done(conn)
    await conn.execute("UPDATE embedq_sample.courses SET title = title, tags = tags WHERE id = $1", row_id)
    assert [j["status"] for j in await jobs_for(conn, "course", row_id)] == ["done"]


async def test_repeated_edits_coalesce_into_one_pending_job(conn):
    row_id = await insert_sample(conn, "post")
    for n in range(5):
        await conn.execute("UPDATE embedq_sample.posts SET body = $2 WHERE id = $1", row_id, f"edit {n}")
    jobs = await jobs_for(conn, "post", row_id)
    assert [tuple(j) for j in jobs] == [("upsert", 4, "pending")]


async def test_coalescing_keeps_the_most_urgent_priority_and_the_latest_op(conn):
    row_id = await insert_sample(conn, "post")
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET priority = 1 WHERE content_type = 'post'")
    await conn.execute("DELETE FROM embedq_sample.posts WHERE id = $1", row_id)
    assert [tuple(j) for j in await jobs_for(conn, "post", row_id)] == [("delete", 1, "pending")]


async def test_a_job_in_flight_does_not_absorb_a_new_edit(conn):
    row_id = await insert_sample(conn, "course")
    await conn.fetch("SELECT * FROM embedq.jobs_claim('test', 10, '1 minute')")
    await conn.execute("UPDATE embedq_sample.courses SET title = 'New title' WHERE id = $1", row_id)
    statuses = [j["status"] for j in await jobs_for(conn, "course", row_id)]
    assert statuses == ["processing", "pending"]


@pytest.mark.parametrize("content_type", ["profile", "course", "post"])
async def test_delete_queues_a_delete(conn, content_type):
    row_id = await insert_sample(conn, content_type)
    await mark_all_done(conn)
    table = {"profile": "embedq_sample.profiles", "course": "embedq_sample.courses", "post": "embedq_sample.posts"}[
        content_type
    ]
    await conn.execute(f"DELETE FROM {table} WHERE id = $1", row_id)
    jobs = await jobs_for(conn, content_type, row_id)
    assert tuple(jobs[-1]) == ("delete", SAMPLE_ROWS[content_type][1], "pending")


async def test_cascaded_deletes_queue_deletes_for_the_children(conn):
    course_id = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('C') RETURNING id")
    lesson_ids = [
        await conn.fetchval(
            "INSERT INTO embedq_sample.lessons (course_id, title) VALUES ($1, $2) RETURNING id", course_id, t
        )
        for t in ("a", "b")
    ]
    await conn.execute("DELETE FROM embedq_sample.courses WHERE id = $1", course_id)
    for lesson_id in lesson_ids:
        assert tuple((await jobs_for(conn, "lesson", lesson_id))[-1]) == ("delete", 3, "pending")


async def test_a_key_change_deletes_the_old_key_and_upserts_the_new(conn):
    row_id = await insert_sample(conn, "course")
    await conn.execute("UPDATE embedq_sample.courses SET id = 999999 WHERE id = $1", row_id)
    assert next(iter((await jobs_for(conn, "course", row_id))[-1])) == "delete"
    assert next(iter((await jobs_for(conn, "course", 999999))[-1])) == "upsert"


async def test_a_10000_row_statement_queues_10000_jobs_and_one_notify(conn, dsn):
    from embedq import db

    listener = await db.connect(dsn, "embedq-tests-listen")
    notifications: list[str] = []
    await listener.add_listener("embedq_jobs", lambda *args: notifications.append(args[3]))

    async def settle() -> None:
        await conn.execute("SELECT pg_notify('embedq_jobs', 'marker')")
        for _ in range(100):  # deliveries are asynchronous: wait for our marker
            if "marker" in notifications:
                break
            await asyncio.sleep(0.02)
        notifications.remove("marker")

    try:
        await conn.execute(
            "INSERT INTO embedq_sample.courses (title, description) "
            "SELECT 'Course ' || g, 'About ' || g FROM generate_series(1, 10000) g"
        )
        await settle()
        assert notifications == [""]  # one NOTIFY for 10,000 rows, constant payload

        # while that statement's work waits in the inbox, a listener is already awake: no NOTIFY
        await conn.execute("UPDATE embedq_sample.courses SET description = description || '!' WHERE id <= 10")
        await settle()
        assert notifications == [""]

        # the statement wrote one inbox row; ingesting it yields one job per row
        assert await conn.fetchval("SELECT count(*) FROM embedq.job_inbox") == 2
        assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 10000
        assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE content_type = 'course'") == 10000

        # once the inbox is empty, the next statement wakes the listeners again
        await conn.execute("UPDATE embedq_sample.courses SET description = description || '?'")
        await settle()
        assert notifications == ["", ""]
    finally:
        await listener.close()


async def test_statement_touching_nothing_embedded_sends_no_notify(conn, dsn):
    from embedq import db

    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'c' || g FROM generate_series(1, 10) g")
    listener = await db.connect(dsn, "embedq-tests-listen")
    notifications: list[str] = []
    await listener.add_listener("embedq_jobs", lambda *args: notifications.append(args[3]))
    try:
        await conn.execute("UPDATE embedq_sample.courses SET price_cents = 5")
        await conn.execute("SELECT pg_notify('embedq_jobs', 'probe')")
        for _ in range(50):
            if notifications:
                break
            await asyncio.sleep(0.05)
    finally:
        await listener.close()
    assert notifications == ["probe"]


class Wakeups:
    """NOTIFYs on embedq_jobs seen by a separate connection."""

    def __init__(self, listener) -> None:
        self.listener = listener
        self.seen: list[str] = []

    @classmethod
    async def listening(cls, dsn: str) -> Wakeups:
        from embedq import db

        wakeups = cls(await db.connect(dsn, "embedq-tests-listen"))
        await wakeups.listener.add_listener("embedq_jobs", lambda *args: wakeups.seen.append(args[3]))
        return wakeups

    async def since_last(self, conn) -> int:
        """Wake-ups delivered since the last call; a marker of our own flushes the ones in flight."""
        await conn.execute("SELECT pg_notify('embedq_jobs', 'marker')")
        for _ in range(250):
            if "marker" in self.seen:
                break
            await asyncio.sleep(0.02)
        count = len([p for p in self.seen if p != "marker"])
        self.seen.clear()
        return count

    async def close(self) -> None:
        await self.listener.close()


async def test_many_single_row_statements_in_one_transaction_wake_the_listeners_once(conn, dsn):
    wakeups = await Wakeups.listening(dsn)
    try:
        async with conn.transaction():
            for n in range(50):
                await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ($1)", f"post {n}")
                await conn.execute("UPDATE embedq_sample.posts SET body = 'edited' WHERE title = $1", f"post {n}")
        assert await wakeups.since_last(conn) == 1
        assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 50

        # the next transaction finds the inbox empty again and wakes them
        await conn.execute("DELETE FROM embedq_sample.posts WHERE title = 'post 7'")
        assert await wakeups.since_last(conn) == 1
    finally:
        await wakeups.close()


async def test_a_rolled_back_savepoint_takes_its_rows_and_its_wakeup_with_it(conn, dsn):
    wakeups = await Wakeups.listening(dsn)
    try:
        async with conn.transaction():
            with contextlib.suppress(RuntimeError):
                async with conn.transaction():  # a savepoint
                    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('rolled back')")
                    raise RuntimeError
            kept = await conn.fetchval("INSERT INTO embedq_sample.posts (title) VALUES ('kept') RETURNING id")
        assert await wakeups.since_last(conn) == 1
        assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 1
        assert await conn.fetchval("SELECT source_id FROM embedq.jobs WHERE content_type = 'post'") == str(kept)

        # a savepoint rolled back alone: nothing queued, nobody woken
        async with conn.transaction():
            with contextlib.suppress(RuntimeError):
                async with conn.transaction():
                    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('rolled back')")
                    raise RuntimeError
        assert await wakeups.since_last(conn) == 0
        assert await conn.fetchval("SELECT count(*) FROM embedq.job_inbox") == 0
    finally:
        await wakeups.close()


async def test_single_row_updates_then_a_bulk_one_queue_exactly_the_changed_rows(conn):
    """The UPDATE trigger's plan is cached after a few statements; it must stay right for any size."""
    await conn.execute("INSERT INTO embedq_sample.courses (title) SELECT 'c' || g FROM generate_series(1, 3000) g")
    await mark_all_done(conn)
    for row_id in range(1, 21):
        await conn.execute("UPDATE embedq_sample.courses SET title = title || '!' WHERE id = $1", row_id)
    # 2,000 rows change an embedded field, 1,000 another column, and one row changes its key
    await conn.execute(
        "UPDATE embedq_sample.courses SET title = CASE WHEN id <= 2000 THEN title || '?' ELSE title END, "
        "price_cents = 1, id = CASE WHEN id = 3000 THEN 9999 ELSE id END"
    )
    await conn.execute("SELECT embedq.jobs_ingest()")
    pending = await conn.fetch(
        "SELECT op::text, source_id FROM embedq.jobs WHERE content_type = 'course' AND status = 'pending'"
    )
    assert sorted((r["op"], int(r["source_id"])) for r in pending) == sorted(
        [("upsert", n) for n in range(1, 2001)] + [("delete", 3000), ("upsert", 9999)]
    )


async def test_rows_without_a_key_queue_nothing_and_block_nothing(conn):
    await conn.execute("CREATE TABLE handles (handle text UNIQUE, bio text)")
    await conn.execute("SELECT embedq.register_source('handle', 'handles', ARRAY['bio'], key_column => 'handle')")
    await conn.execute("INSERT INTO handles VALUES (NULL, 'anonymous'), ('ada', 'maths'), (NULL, 'also anonymous')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now()")
    await conn.execute("UPDATE handles SET bio = bio || '!'")  # every row, keyed or not
    await conn.execute("UPDATE handles SET handle = 'grace' WHERE bio = 'anonymous!'")  # gains a key
    await conn.execute("UPDATE handles SET handle = NULL WHERE handle = 'ada'")  # loses it
    await conn.execute("SELECT embedq.jobs_ingest()")
    pending = await conn.fetch("SELECT op::text, source_id FROM embedq.jobs WHERE status = 'pending'")
    assert sorted(tuple(r) for r in pending) == [("delete", "ada"), ("upsert", "grace")]


async def test_upgrading_rebuilds_the_triggers_of_existing_registrations(conn, dsn):
    from embedq import migrations

    await conn.execute("UPDATE embedq.sources SET enabled = false WHERE content_type = 'comment'")
    migrations.downgrade(dsn, "0007")
    # a trigger function as an earlier embedq wrote it: it queues under a name we can recognise
    await conn.execute(
        "CREATE OR REPLACE FUNCTION embedq.source_post_insert() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO embedq.job_inbox (content_type, op, priority, source_ids) "
        "SELECT 'older', 'upsert', 9, array_agg(r.id::text) FROM new_rows r; RETURN NULL; END $$"
    )
    before = await conn.fetch("SELECT * FROM embedq.sources ORDER BY content_type")
    migrations.upgrade(dsn)

    post_id = await conn.fetchval("INSERT INTO embedq_sample.posts (title) VALUES ('after') RETURNING id")
    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 1
    assert tuple(await conn.fetchrow("SELECT content_type, source_id, priority FROM embedq.jobs")) == (
        "post",
        str(post_id),
        4,
    )
    assert await conn.fetch("SELECT * FROM embedq.sources ORDER BY content_type") == before  # disabled stays so


async def test_upgrading_stops_at_a_registration_whose_columns_are_gone_and_names_it(conn, dsn):
    from embedq import migrations

    await conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text, draft text)")
    await conn.execute("SELECT embedq.register_source('note', 'notes', ARRAY['body', 'draft'])")
    migrations.downgrade(dsn, "0007")
    await conn.execute("ALTER TABLE notes DROP COLUMN draft")
    with pytest.raises(
        psycopg.errors.UndefinedColumn, match=r"column draft of source 'note' no longer exists in table public\.notes"
    ):
        migrations.upgrade(dsn)
    assert migrations.current(dsn) == "0007"

    await conn.execute("SELECT embedq.unregister_source('note')")
    migrations.upgrade(dsn)
    assert migrations.current(dsn) == migrations.head()


async def test_urgent_statements_are_ingested_before_a_backlog_of_statements(conn):
    for n in range(50):  # a backlog written one statement at a time, at the comments' priority (5)
        await conn.execute(
            "INSERT INTO embedq_sample.comments (post_id, body) VALUES ($1, $2)",
            await conn.fetchval("INSERT INTO embedq_sample.posts (title) VALUES ($1) RETURNING id", f"post {n}"),
            f"comment {n}",
        )
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('urgent') RETURNING id")
    await conn.execute("SELECT embedq.jobs_ingest(1)")  # room for one statement's keys
    assert await conn.fetch("SELECT content_type, source_id FROM embedq.jobs") == [("course", str(course))]
