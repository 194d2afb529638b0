"""Operations through the real CLI: verify finds and fixes drift, replay brings jobs back,
models drop removes old vectors. The default local model embeds, as in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest


def embedq(*args: str, dsn: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env["DATABASE_URL"] = dsn
    return subprocess.run(
        [sys.executable, "-m", "embedq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def db(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def test_verify_finds_missing_stale_and_orphaned_and_fix_repairs_them(dsn, db):
    ids = [
        db.execute("INSERT INTO embedq_sample.posts (title, body) VALUES (%s, 'body') RETURNING id", (t,)).fetchone()[0]
        for t in ("one", "two", "three", "four")
    ]
    assert embedq("listen", "--drain", dsn=dsn).returncode == 0
    clean = embedq("verify", "--json", dsn=dsn)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["drift"] == 0

    db.execute("DELETE FROM embedq.embeddings WHERE source_id = %s", (str(ids[0]),))  # deleted by hand
    with db.transaction():  # changed behind the triggers' back (a replica-mode bulk load)
        db.execute("SET LOCAL session_replication_role = replica")
        db.execute("UPDATE embedq_sample.posts SET body = 'edited unseen' WHERE id = %s", (ids[1],))
        db.execute("DELETE FROM embedq_sample.posts WHERE id = %s", (ids[2],))  # its vectors become orphans
    db.execute(
        "UPDATE embedq_sample.posts SET title = 'edited, job queued' WHERE id = %s", (ids[3],)
    )  # in flight: no drift

    found = embedq("verify", "--type", "post", "--json", dsn=dsn)
    assert found.returncode == 1, found.stderr
    post = json.loads(found.stdout)["types"]["post"]
    assert (post["missing"], post["stale"], post["orphaned"]) == ([str(ids[0])], [str(ids[1])], [str(ids[2])])
    assert post["in_flight"] == 1 and post["checked"] == 3

    fixed = embedq("verify", "--type", "post", "--fix", "--json", dsn=dsn)
    assert fixed.returncode == 1 and json.loads(fixed.stdout)["queued"] == 3
    assert embedq("listen", "--drain", dsn=dsn).returncode == 0
    again = embedq("verify", "--json", dsn=dsn)
    assert again.returncode == 0, again.stdout
    stored = db.execute("SELECT content FROM embedq.embeddings WHERE source_id = %s", (str(ids[1]),)).fetchone()[0]
    assert "edited unseen" in stored


def test_verify_table_output_and_bad_type(dsn):
    listed = embedq("verify", dsn=dsn)
    assert listed.returncode == 0 and "drift: 0" in listed.stdout
    bad = embedq("verify", "--type", "nope", dsn=dsn)
    assert bad.returncode == 2 and "unknown content type 'nope'" in bad.stderr


def test_replay_of_dead_jobs_re_embeds_them_and_dry_run_changes_nothing(dsn, db):
    post = db.execute(
        "INSERT INTO embedq_sample.posts (title) VALUES ('cancelled then replayed') RETURNING id"
    ).fetchone()[0]
    db.execute("SELECT embedq.jobs_ingest()")
    job_id = db.execute("SELECT id FROM embedq.jobs").fetchone()[0]
    assert embedq("jobs", "cancel", str(job_id), dsn=dsn).returncode == 0

    dry = embedq("replay", "--dry-run", "--json", dsn=dsn)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["by_type_and_status"] == [{"content_type": "post", "status": "dead", "jobs": 1}]
    assert db.execute("SELECT status::text FROM embedq.jobs").fetchone()[0] == "dead"

    refused = embedq("replay", dsn=dsn)  # no terminal to ask, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr

    replayed = embedq("replay", "--type", "post", "--since", "2000-01-01", "--yes", "--json", dsn=dsn)
    assert json.loads(replayed.stdout)["replayed"] == 1
    assert db.execute("SELECT status::text, attempts FROM embedq.jobs").fetchone() == ("pending", 0)
    assert embedq("listen", "--drain", dsn=dsn).returncode == 0
    assert db.execute("SELECT count(*) FROM embedq.embeddings WHERE source_id = %s", (str(post),)).fetchone()[0] == 1

    # done jobs only on purpose: explicit ids or --status done
    assert json.loads(embedq("replay", "--yes", "--json", dsn=dsn).stdout)["matched"] == 0
    assert json.loads(embedq("replay", "--id", str(job_id), "--yes", "--json", dsn=dsn).stdout)["replayed"] == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("replay", "--status", "pending"), "--status takes failed, dead and done"),
        (("replay", "--since", "yesterday"), "is not an ISO date"),
        (("replay", "--id", "0"), "Invalid value"),
    ],
)
def test_replay_rejects_bad_input(dsn, args, fragment):
    result = embedq(*args, dsn=dsn)
    assert result.returncode == 2 and fragment in result.stderr and result.stderr.count("\n") == 1


def test_models_drop_removes_an_old_model_but_never_the_active_one(dsn, db):
    db.execute("SELECT embedq.model_ensure('multilingual-e5-small', 'local', 384)")  # active
    db.execute("SELECT embedq.model_ensure('old-model', 'openai', 3)")
    db.execute(
        "INSERT INTO embedq.embeddings (content_type, source_id, model, chunk_index, embedding, content_hash,"
        " content) VALUES ('post', '1', 'old-model', 0, '[1,2,3]', 'h', 'c')"
    )
    refused = embedq("models", "drop", "multilingual-e5-small", "--yes", dsn=dsn)
    assert refused.returncode == 2 and "is the active one" in refused.stderr
    dropped = embedq("models", "drop", "old-model", "--yes", dsn=dsn)
    assert dropped.returncode == 0 and "1 vectors and 0 jobs deleted" in dropped.stdout
    assert db.execute("SELECT count(*) FROM embedq.embeddings WHERE model = 'old-model'").fetchone()[0] == 0
    assert [r[0] for r in db.execute("SELECT name FROM embedq.models").fetchall()] == ["multilingual-e5-small"]
    assert embedq("models", "drop", "no-such", "--yes", dsn=dsn).returncode == 2
