"""Local mode end to end with the real default model (multilingual-e5-small, offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from embedq.listener import Listener, ListenerConfig
from embedq.providers.local import LocalEmbedder
from embedq.search import search
from embedq.testing import CountingEmbedder


@pytest.fixture(scope="module")
def local_embedder():
    embedder = LocalEmbedder()
    embedder.warm()
    return embedder


def listener_for(dsn, settings, embedder) -> Listener:
    return Listener(dsn, embedder, settings, ListenerConfig(batch_size=32, batch_window=0.0, poll_interval=0.2))


async def test_paraphrases_find_the_right_rows_in_two_languages(conn, dsn, settings, local_embedder):
    rows = {
        "bread": "Baking sourdough bread at home: starter, hydration, shaping and scoring the loaf",
        "sql": "Relational databases: writing SQL joins, indexes and query plans",
        "yoga": "Morning yoga routine for back pain and flexibility",
        "mandarin": "普通话入门：拼音、声调和日常会话",
    }
    ids = {}
    for name, title in rows.items():
        ids[name] = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ($1) RETURNING id", title)
    counting = CountingEmbedder(local_embedder)
    totals = await listener_for(dsn, settings, counting).run(drain=True)
    assert totals.done == 4 and counting.document_calls >= 1

    expectations = [
        ("how do I make my own loaf of bread", "bread"),
        ("speeding up slow database queries", "sql"),
        ("stretching exercises to relieve a sore back", "yoga"),
        ("learn to speak Chinese", "mandarin"),
        ("如何烤面包", "bread"),
    ]
    for text, expected in expectations:
        hits = await search(conn, counting, text, k=1)
        assert hits[0].source_id == str(ids[expected]), (text, hits)


async def test_unchanged_text_makes_no_model_call_and_an_edit_re_embeds(conn, dsn, settings, local_embedder):
    course = await conn.fetchval(
        "INSERT INTO embedq_sample.courses (title, description) VALUES ('Photography', 'Light') RETURNING id"
    )
    counting = CountingEmbedder(local_embedder)
    await listener_for(dsn, settings, counting).run(drain=True)
    calls = counting.document_calls

    await conn.execute("SELECT * FROM embedq.backfill('course', NULL, 10)")
    await listener_for(dsn, settings, counting).run(drain=True)
    assert counting.document_calls == calls

    await conn.execute(
        "UPDATE embedq_sample.courses SET description = 'Composition and exposure' WHERE id = $1", course
    )
    await listener_for(dsn, settings, counting).run(drain=True)
    assert counting.document_calls == calls + 1
    stored = await conn.fetchval("SELECT content FROM embedq.embeddings WHERE source_id = $1", str(course))
    assert "Composition and exposure" in stored


def run_cli(*args: str, dsn: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env["DATABASE_URL"] = dsn
    return subprocess.run([sys.executable, "-m", "embedq", *args], env=env, capture_output=True, text=True, timeout=300)


def test_cli_listen_drain_then_search_backfill_and_models(dsn):
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO embedq_sample.posts (title, body) VALUES ('Tomato growing', 'Water tomatoes deeply "
            "twice a week'), "
            "('Guitar chords', 'Start with G, C and D')"
        )
    drained = run_cli("listen", "--drain", dsn=dsn)
    assert drained.returncode == 0, drained.stderr
    assert "done 2" in drained.stdout

    found = run_cli("search", "vegetable garden watering", "--type", "post", "-k", "1", "--json", dsn=dsn)
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 1 and "Tomato" in hits[0]["content"]

    # the guitar post's exact chord names, by keywords; with a filter that keeps nothing
    chords = run_cli("search", "G, C and D", "--hybrid", "-k", "1", "--json", dsn=dsn)
    assert chords.returncode == 0, chords.stderr
    assert "Guitar" in json.loads(chords.stdout)[0]["content"]
    none = run_cli("search", "tomatoes", "--min-score", "0.99", "--json", dsn=dsn)
    assert none.returncode == 0 and json.loads(none.stdout) == []
    bad_filter = run_cli("search", "x", "--filter", "color", dsn=dsn)
    assert bad_filter.returncode == 2 and "KEY=VALUE" in bad_filter.stderr
    assert "--hybrid" in run_cli("search", "--help", dsn=dsn).stdout

    bad_type = run_cli("search", "x", "--type", "nope", dsn=dsn)
    assert bad_type.returncode == 2 and "unknown content type 'nope'" in bad_type.stderr

    backfilled = run_cli("backfill", "--type", "post", "--json", dsn=dsn)
    assert json.loads(backfilled.stdout) == {"content_type": "post", "queued": 2, "model": None}

    models = run_cli("models", "list", "--json", dsn=dsn)
    listed = json.loads(models.stdout)
    assert [(m["name"], m["active"], m["vectors"]) for m in listed] == [("multilingual-e5-small", True, 2)]
    missing = run_cli("models", "activate", "no-such-model", dsn=dsn)
    assert missing.returncode == 2 and "model 'no-such-model' is not known" in missing.stderr
    activated = run_cli("models", "activate", "multilingual-e5-small", dsn=dsn)
    assert activated.returncode == 0, activated.stderr


def test_sigterm_finishes_the_batch_in_hand_then_exits_0(dsn):
    import signal
    import time

    import psycopg

    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env.update(DATABASE_URL=dsn, EMBEDQ_BATCH_SIZE="16", EMBEDQ_BATCH_WINDOW_MS="0")
    text = " ".join(f"sentence number {i} about gardening and cooking." for i in range(20))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO embedq_sample.posts (title, body) SELECT 'post ' || g, %s FROM generate_series(1, 48) g",
            (text,),
        )
        listener = subprocess.Popen(
            [sys.executable, "-m", "embedq", "listen"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                in_hand = conn.execute("SELECT count(*) FROM embedq.jobs WHERE status = 'processing'").fetchone()[0]
                if in_hand:
                    break
                time.sleep(0.02)
            assert in_hand == 16
            listener.send_signal(signal.SIGTERM)
            _stdout, stderr = listener.communicate(timeout=120)
        finally:
            listener.kill()
        assert listener.returncode == 0, stderr
        counts = dict(conn.execute("SELECT status::text, count(*) FROM embedq.jobs GROUP BY 1").fetchall())
    # the batch in hand was finished, nothing was left half-done, the rest waits for the next listener
    assert counts.get("processing", 0) == 0
    assert counts["done"] % 16 == 0 and counts["done"] >= 16
    assert counts["done"] + counts.get("pending", 0) == 48


async def test_a_long_lesson_is_chunked_and_embedded_by_the_real_model(conn, dsn, settings, local_embedder):
    # 20 KB of English keeps this near ten seconds on two cores (~1 s per 400-token chunk);
    # the 1 MB case runs with the zero-cost embedder in tests/integration/test_processing.py
    from embedq.sample import sample_data  # readable prose to repeat

    paragraphs = [
        lesson["content"]
        for course in sample_data()["courses"]
        for lesson in course["lessons"]
        if lesson.get("content") and lesson["content"].isascii()
    ]
    text = "\n\n".join(paragraphs)
    content = "\n\n".join([text] * (20_000 // len(text) + 1))[:20_000]
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('Everything') RETURNING id")
    lesson = await conn.fetchval(
        "INSERT INTO embedq_sample.lessons (course_id, title, content) VALUES ($1, 'All', $2) RETURNING id",
        course,
        content,
    )
    totals = await listener_for(dsn, settings, local_embedder).run(drain=True)
    assert totals.dead == 0 and totals.done == 2
    chunks = await conn.fetch(
        "SELECT chunk_index, content FROM embedq.embeddings WHERE content_type = 'lesson' "
        "AND source_id = $1 ORDER BY chunk_index",
        str(lesson),
    )
    assert len(chunks) > 8
    assert [c["chunk_index"] for c in chunks] == list(range(len(chunks)))
    assert all(local_embedder.count_tokens(c["content"]) <= settings.chunk_tokens for c in chunks)
