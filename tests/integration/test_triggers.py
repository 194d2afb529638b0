"""Triggers on the sample tables queue the right jobs, and only when an embedded field changed."""

from __future__ import annotations

import asyncio

import asyncpg
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
