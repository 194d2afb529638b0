"""register_source / unregister_source on any table and key type, and what they refuse."""

from __future__ import annotations

import uuid

import asyncpg
import pytest


async def test_a_uuid_keyed_table_gets_jobs_and_rows(conn):
    await conn.execute(
        "CREATE TABLE notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text, meta jsonb, pinned bool)"
    )
    await conn.execute("SELECT embedq.register_source('note', 'notes', ARRAY['body', 'meta'], 1)")
    note_id = await conn.fetchval("INSERT INTO notes (body, meta) VALUES ('hello', '{\"a\": 1}') RETURNING id")
    assert isinstance(note_id, uuid.UUID)
    await conn.execute("SELECT embedq.jobs_ingest()")
    job = await conn.fetchrow(
        "SELECT op::text, priority FROM embedq.jobs WHERE content_type = 'note' AND source_id = $1", str(note_id)
    )
    assert tuple(job) == ("upsert", 1)

    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now()")
    await conn.execute("UPDATE notes SET pinned = true")
    await conn.execute("UPDATE notes SET meta = '{\"a\": 1}'")  # jsonb compared by value: unchanged
    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 0
    await conn.execute("UPDATE notes SET meta = '{\"a\": 2}'")
    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 1

    rows = await conn.fetch("SELECT * FROM embedq.source_rows('note', $1)", [str(note_id), "not-a-uuid"])
    assert [(r["source_id"], r["fields"]) for r in rows] == [(str(note_id), {"body": "hello", "meta": {"a": 2}})]


async def test_a_text_keyed_table_with_a_json_field(conn):
    await conn.execute("CREATE TABLE docs (slug text PRIMARY KEY, doc json, views int)")
    await conn.execute("SELECT embedq.register_source('doc', 'docs', ARRAY['doc'], 5, key_column => 'slug')")
    await conn.execute("INSERT INTO docs VALUES ('a-b', '{\"t\": \"x\"}', 0)")
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now()")
    await conn.execute('UPDATE docs SET views = 2, doc = \'{"t": "x"}\'')
    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 0
    await conn.execute("DELETE FROM docs")
    await conn.execute("SELECT embedq.jobs_ingest()")
    assert tuple(await conn.fetchrow("SELECT source_id, op::text FROM embedq.jobs WHERE status = 'pending'")) == (
        "a-b",
        "delete",
    )


@pytest.mark.parametrize("hostile", ['x"; DROP TABLE embedq_sample.courses; --', "per%s cent%I %1$s"])
async def test_hostile_identifiers_are_data_not_sql(conn, hostile):
    quoted = hostile.replace(chr(34), chr(34) * 2)
    await conn.execute(f'CREATE TABLE "{quoted}" ("{quoted}" text, id int PRIMARY KEY)')
    table = await conn.fetchval("SELECT quote_ident($1)", hostile)
    await conn.execute("SELECT embedq.register_source('hostile', $1::regclass, ARRAY[$2])", table, hostile)
    await conn.execute(f"INSERT INTO {table} (id, {table}) VALUES (1, 'text')")
    assert await conn.fetchval("SELECT to_regclass('embedq_sample.courses') IS NOT NULL")
    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 1
    rows = await conn.fetch("SELECT * FROM embedq.source_rows('hostile', ARRAY['1'])")
    assert rows[0]["fields"] == {hostile: "text"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "SELECT embedq.register_source('c2', 'embedq_sample.courses', ARRAY['nope'])",
            "column nope does not exist in table embedq_sample.courses",
        ),
        (
            "SELECT embedq.register_source('Bad Type', 'embedq_sample.courses', ARRAY['title'])",
            "content type 'Bad Type' is not valid",
        ),
        (
            "SELECT embedq.register_source('x; drop table courses', 'embedq_sample.courses', ARRAY['title'])",
            "is not valid",
        ),
        (
            "SELECT embedq.register_source('c2', 'embedq_sample.courses', ARRAY['title'], 0)",
            "priority 0 is out of range",
        ),
        ("SELECT embedq.register_source('c2', 'embedq_sample.courses', ARRAY[]::text[])", "at least one field"),
        (
            "SELECT embedq.register_source('c2', 'embedq_sample.courses', ARRAY['title', 'title'])",
            "contain a duplicate",
        ),
        (
            "SELECT embedq.register_source('c2', 'embedq_sample.courses', ARRAY['title'], 3, 'slug')",
            "key column slug does not exist",
        ),
        (
            "SELECT embedq.register_source('c2', 'embedq_sample.courses', ARRAY['title'], 3, 'category')",
            "key column category of table embedq_sample.courses has no unique index",
        ),
        (
            "SELECT embedq.register_source('c2', 'no_such_table', ARRAY['title'])",
            'relation "no_such_table" does not exist',
        ),
        ("SELECT embedq.unregister_source('never_registered')", "content type 'never_registered' is not registered"),
    ],
)
async def test_bad_registrations_fail_with_a_clear_message(conn, call, message):
    with pytest.raises(asyncpg.PostgresError) as excinfo:
        await conn.execute(call)
    assert message in str(excinfo.value)
    assert await conn.fetchval("SELECT count(*) FROM embedq.sources") == 5


async def test_a_view_cannot_be_registered(conn):
    await conn.execute("CREATE VIEW course_titles AS SELECT id, title FROM embedq_sample.courses")
    with pytest.raises(asyncpg.PostgresError, match="is not a table"):
        await conn.execute("SELECT embedq.register_source('ct', 'course_titles', ARRAY['title'])")


async def test_a_temporary_table_cannot_be_registered(conn):
    await conn.execute("CREATE TEMP TABLE scratch (id int PRIMARY KEY, note text)")
    with pytest.raises(asyncpg.PostgresError, match="is a temporary table"):
        await conn.execute("SELECT embedq.register_source('scratch', 'scratch', ARRAY['note'])")


async def test_unregister_removes_triggers_and_ends_queued_jobs(conn):
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('queued')")
    await conn.execute("SELECT embedq.unregister_source('post')")
    await conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('not queued')")
    rows = await conn.fetch("SELECT status::text, last_error FROM embedq.jobs WHERE content_type = 'post'")
    assert [tuple(r) for r in rows] == [("dead", "content type unregistered")]
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'embedq_sample.posts'::regclass AND NOT tgisinternal"
        )
        == 0
    )


async def test_reregistering_replaces_fields_and_priority(conn):
    await conn.execute("SELECT embedq.register_source('post', 'embedq_sample.posts', ARRAY['body'], 1)")
    post_id = await conn.fetchval("INSERT INTO embedq_sample.posts (title, body) VALUES ('t', 'b') RETURNING id")
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now()")
    await conn.execute(
        "UPDATE embedq_sample.posts SET title = 'new title' WHERE id = $1", post_id
    )  # no longer embedded
    assert await conn.fetchval("SELECT embedq.jobs_ingest()") == 0
    await conn.execute("UPDATE embedq_sample.posts SET body = 'new body' WHERE id = $1", post_id)
    await conn.execute("SELECT embedq.jobs_ingest()")
    assert await conn.fetchval("SELECT priority FROM embedq.jobs WHERE status = 'pending'") == 1
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'embedq_sample.posts'::regclass AND NOT tgisinternal"
        )
        == 3
    )


async def test_a_disabled_source_queues_nothing(conn):
    await conn.execute("UPDATE embedq.sources SET enabled = false WHERE content_type = 'comment'")
    post_id = await conn.fetchval("INSERT INTO embedq_sample.posts (title) VALUES ('p') RETURNING id")
    await conn.execute("INSERT INTO embedq_sample.comments (post_id, body) VALUES ($1, 'c')", post_id)
    await conn.execute("SELECT embedq.jobs_ingest()")
    assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE content_type = 'comment'") == 0


@pytest.mark.parametrize(
    ("key_type", "old_key", "new_key"),
    [
        ("bigint", "7", "8"),
        ("uuid", "6f1c8a52-6f4b-4b7e-9a43-0d6f5e9c1a10", "0b8e2c1e-3d9a-4c1f-8e0a-5a1b2c3d4e5f"),
        ("varchar(20)", "old-slug", "new-slug"),
        ("numeric", "1.5", "2.50"),
        ('text COLLATE "C"', "Straße", "STRASSE"),
    ],
)
async def test_a_key_change_is_a_delete_and_an_upsert_whatever_the_key_type(conn, key_type, old_key, new_key):
    await conn.execute(f"CREATE TABLE keyed (k {key_type} PRIMARY KEY, body text, other int)")
    await conn.execute("SELECT embedq.register_source('keyed', 'keyed', ARRAY['body'], key_column => 'k')")
    await conn.execute("INSERT INTO keyed VALUES ($1::text::" + key_type.split()[0] + ", 'b', 0)", old_key)
    await conn.execute("SELECT embedq.jobs_ingest()")
    await conn.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now()")

    await conn.execute("UPDATE keyed SET other = 1")  # neither the key nor a field: nothing
    await conn.execute("UPDATE keyed SET k = $1::text::" + key_type.split()[0], new_key)
    await conn.execute("SELECT embedq.jobs_ingest()")
    pending = await conn.fetch("SELECT op::text, source_id FROM embedq.jobs WHERE status = 'pending'")
    stored_new = await conn.fetchval("SELECT k::text FROM keyed")
    assert sorted(tuple(r) for r in pending) == [("delete", old_key), ("upsert", stored_new)]
    rows = await conn.fetch("SELECT * FROM embedq.source_rows('keyed', $1)", [stored_new])
    assert [r["fields"] for r in rows] == [{"body": "b"}]
