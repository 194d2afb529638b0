"""A second model filled side by side through the real CLI: `backfill --model` fills it while
search keeps using the active model, row changes reach both, `models activate` switches at
once, `models drop` removes the old vectors. The active model is the offline local one; the
second is an OpenAI model served by the OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import psycopg
import pytest

from embedq.settings import LOCAL_MODEL
from tests.fakes.openai_server import FakeOpenAIServer

SECOND_MODEL = "text-embedding-3-small"


def run_embedq(*args: str, dsn: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    environment.update(env or {}, DATABASE_URL=dsn)
    return subprocess.run(
        [sys.executable, "-m", "embedq", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


async def embedq(*args: str, dsn: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # in a thread: the OpenAI-compatible server runs on this test's event loop
    return await asyncio.to_thread(run_embedq, *args, dsn=dsn, env=env)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr
    return result


def vectors_by_model(db) -> dict[str, dict[str, str]]:
    """model -> {post id: stored chunk text}"""
    stored: dict[str, dict[str, str]] = {}
    for model, source_id, content in db.execute(
        "SELECT model, source_id, content FROM embedq.embeddings WHERE content_type = 'post'"
    ):
        stored.setdefault(model, {})[source_id] = content
    return stored


@pytest.fixture
def db(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def second_model():
    async with FakeOpenAIServer(dimensions=1536) as server:
        yield {
            "EMBEDQ_PROVIDER": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-test",
            "EMBEDQ_MODEL": SECOND_MODEL,
            "EMBEDQ_DIMENSIONS": "32",
        }


async def test_a_second_model_fills_side_by_side_then_takes_over(dsn, db, second_model):
    ids = [
        db.execute("INSERT INTO embedq_sample.posts (title, body) VALUES (%s, 'body') RETURNING id", (t,)).fetchone()[0]
        for t in ("alpha", "bravo", "charlie", "delta")
    ]
    ok(await embedq("listen", "--drain", dsn=dsn))
    assert set(vectors_by_model(db)) == {LOCAL_MODEL}

    unknown = await embedq("backfill", "--type", "post", "--model", "not-recorded", dsn=dsn)
    assert unknown.returncode == 2 and "model 'not-recorded' is not known" in unknown.stderr

    filled = json.loads(
        ok(
            await embedq("backfill", "--type", "post", "--model", SECOND_MODEL, "--json", dsn=dsn, env=second_model)
        ).stdout
    )
    assert filled == {"content_type": "post", "queued": 4, "model": SECOND_MODEL}

    # Changes made while the second model fills reach both models.
    db.execute("UPDATE embedq_sample.posts SET title = 'alpha, edited during the fill' WHERE id = %s", (ids[0],))
    db.execute("DELETE FROM embedq_sample.posts WHERE id = %s", (ids[1],))
    new_id = db.execute(
        "INSERT INTO embedq_sample.posts (title) VALUES ('echo, new during the fill') RETURNING id"
    ).fetchone()[0]

    ok(await embedq("listen", "--drain", dsn=dsn, env=second_model))
    # the second model's listener left the active model's jobs alone
    assert db.execute("SELECT count(*) FROM embedq.jobs WHERE model IS NULL AND status = 'pending'").fetchone()[0] == 3
    ok(await embedq("listen", "--drain", dsn=dsn))

    live = {str(i) for i in (ids[0], ids[2], ids[3], new_id)}
    stored = vectors_by_model(db)
    assert set(stored[LOCAL_MODEL]) == live and set(stored[SECOND_MODEL]) == live
    assert all("edited during the fill" in stored[m][str(ids[0])] for m in stored)
    assert json.loads(ok(await embedq("verify", "--json", dsn=dsn)).stdout)["drift"] == 0
    assert json.loads(ok(await embedq("verify", "--json", dsn=dsn, env=second_model)).stdout)["drift"] == 0

    models = {m["name"]: m for m in json.loads(ok(await embedq("models", "list", "--json", dsn=dsn)).stdout)}
    assert (models[LOCAL_MODEL]["active"], models[SECOND_MODEL]["active"]) == (True, False)
    assert models[SECOND_MODEL]["maintained"] and models[SECOND_MODEL]["vectors"] == 4
    hits = json.loads(ok(await embedq("search", "echo", "--json", dsn=dsn)).stdout)
    assert hits and {h["source_id"] for h in hits} <= live  # search used the active model
    not_yet = await embedq("search", "echo", dsn=dsn, env=second_model)
    assert not_yet.returncode == 2 and f"the active model is {LOCAL_MODEL!r}" in not_yet.stderr

    ok(await embedq("models", "activate", SECOND_MODEL, dsn=dsn))
    assert json.loads(ok(await embedq("search", "echo", "--json", dsn=dsn, env=second_model)).stdout)

    # Now the second model follows row changes, and the old one no longer does.
    db.execute("UPDATE embedq_sample.posts SET title = 'charlie, edited after the switch' WHERE id = %s", (ids[2],))
    ok(await embedq("listen", "--drain", dsn=dsn))
    assert db.execute("SELECT count(*) FROM embedq.jobs WHERE status = 'pending'").fetchone()[0] == 1
    ok(await embedq("listen", "--drain", dsn=dsn, env=second_model))
    stored = vectors_by_model(db)
    assert "edited after the switch" in stored[SECOND_MODEL][str(ids[2])]
    assert "edited after the switch" not in stored[LOCAL_MODEL][str(ids[2])]

    dropped = ok(await embedq("models", "drop", LOCAL_MODEL, "--yes", dsn=dsn, env=second_model))
    assert "4 vectors" in dropped.stdout
    assert set(vectors_by_model(db)) == {SECOND_MODEL}
    assert json.loads(ok(await embedq("verify", "--json", dsn=dsn, env=second_model)).stdout)["drift"] == 0
