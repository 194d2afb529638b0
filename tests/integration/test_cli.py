"""The CLI as a user meets it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

import embedq as embedq_package
from embedq import migrations


def embedq(*args: str, database_url: str | None, extra_env: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env.pop("DATABASE_URL", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "embedq", *args], env=env, capture_output=True, text=True, timeout=120)


def assert_one_line_error(result, fragment: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("embedq: error: ")
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_status_json_counts_jobs_by_status_and_priority(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('a'), ('b')")
        post_id = conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('p') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO embedq_sample.comments (post_id, body) VALUES (%s, 'c')", (post_id,))
    result = embedq("status", "--json", database_url=dsn)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["jobs"]["pending"] == {"2": 2, "4": 1, "5": 1}
    assert status["totals"]["pending"] == 4
    assert status["oldest_pending_seconds"] >= 0
    assert set(status["vectors"]) == {"profile", "course", "lesson", "post", "comment"}


def test_status_table_for_people(dsn):
    result = embedq("status", database_url=dsn)
    assert result.returncode == 0, result.stderr
    assert "jobs by status and priority" in result.stdout
    assert "oldest pending job: none" in result.stdout


def test_jobs_show_cancel_retry_round_trip(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('a')")
        conn.execute("SELECT embedq.jobs_ingest()")
        job_id = conn.execute("SELECT id FROM embedq.jobs").fetchone()[0]

    shown = embedq("jobs", "show", str(job_id), "--json", database_url=dsn)
    assert json.loads(shown.stdout)["status"] == "pending"

    cancelled = embedq("jobs", "cancel", str(job_id), "--json", database_url=dsn)
    assert json.loads(cancelled.stdout)["status"] == "dead"
    assert json.loads(cancelled.stdout)["last_error"] == "cancelled by operator"
    assert_one_line_error(embedq("jobs", "cancel", str(job_id), database_url=dsn), "is already dead")

    retried = embedq("jobs", "retry", str(job_id), "--json", database_url=dsn)
    assert json.loads(retried.stdout)["status"] == "pending"
    assert json.loads(retried.stdout)["attempts"] == 0
    assert_one_line_error(embedq("jobs", "retry", str(job_id), database_url=dsn), "only failed, dead or done")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("jobs", "show", "424242"), "job 424242 does not exist"),
        (("jobs", "show", "abc"), "Invalid value"),
        (("jobs", "show", "0"), "Invalid value"),
        (("no-such-command",), "No such command"),
        (("status", "--no-such-option"), "No such option"),
    ],
)
def test_bad_input_exits_2_with_one_line(dsn, args, fragment):
    assert_one_line_error(embedq(*args, database_url=dsn), fragment)


def test_unreachable_database_exits_2_with_one_line():
    result = embedq("status", database_url="postgresql://embedq@127.0.0.1:1/nowhere")
    assert_one_line_error(result, "cannot connect to postgresql://embedq@127.0.0.1:1/nowhere")


def test_password_is_not_echoed_in_connection_errors():
    result = embedq("status", database_url="postgresql://embedq:s3cret-pw@127.0.0.1:1/nowhere")
    assert_one_line_error(result, "cannot connect")
    assert "s3cret-pw" not in result.stderr


def test_bad_setting_exits_2_naming_the_variable(dsn):
    result = embedq("status", database_url=dsn, extra_env={"EMBEDQ_BATCH_SIZE": "-3"})
    assert_one_line_error(result, "EMBEDQ_BATCH_SIZE='-3' is not valid")


def test_a_poll_interval_of_nan_is_refused(dsn):
    result = embedq("status", database_url=dsn, extra_env={"EMBEDQ_POLL_INTERVAL": "nan"})
    assert_one_line_error(result, "EMBEDQ_POLL_INTERVAL='nan' is not valid: must be a finite number >= 0")


def test_unmigrated_database_says_to_migrate(embedded_server):
    with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS embedq_empty")
        admin.execute("CREATE DATABASE embedq_empty")
    dsn = f"postgresql://postgres@/embedq_empty?host={embedded_server.host}&port=5432"
    try:
        assert_one_line_error(embedq("status", database_url=dsn), "run `embedq migrate` first")
        migrated = embedq("migrate", database_url=dsn)
        assert migrated.returncode == 0, migrated.stderr
        assert f"-> {migrations.head()}" in migrated.stdout
        again = embedq("migrate", database_url=dsn)
        assert "schema up to date" in again.stdout
        assert embedq("status", database_url=dsn).returncode == 0
    finally:
        with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS embedq_empty WITH (FORCE)")


def test_activating_a_model_still_filling_warns_how_many_jobs_it_lacks(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT embedq.model_ensure('model-a', 'test', 8)")
        conn.execute("SELECT embedq.model_ensure('model-b', 'test', 8)")
        conn.execute("UPDATE embedq.models SET maintained = true WHERE name = 'model-b'")
        conn.execute("INSERT INTO embedq_sample.posts (title) VALUES ('one'), ('two')")
        conn.execute("SELECT embedq.jobs_ingest()")
    result = embedq("models", "activate", "model-b", database_url=dsn)
    assert result.returncode == 0, result.stderr
    assert "active model: model-b" in result.stdout
    assert "warning: 2 jobs of model-b are still queued" in result.stderr


def test_version():
    result = embedq("--version", database_url=None)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"embedq {embedq_package.__version__}\n", "")


def test_preview_shows_the_text_and_chunks_processing_embeds(dsn):
    long_description = " ".join(f"Step {n}: knead the dough, fold it, and let it rest." for n in range(45))
    with psycopg.connect(dsn, autocommit=True) as conn:
        course = conn.execute(
            "INSERT INTO embedq_sample.courses (title, category, description) VALUES (%s, %s, %s) RETURNING id",
            ("Bread", "Baking", long_description),
        ).fetchone()[0]

    shown = embedq("preview", "course", str(course), "--json", database_url=dsn)
    assert shown.returncode == 0, shown.stderr
    preview = json.loads(shown.stdout)
    assert preview["text"].startswith("Course: Bread\nCategory: Baking\nDescription: Step 0:")
    assert preview["template"].startswith("Course: {title}")
    assert len(preview["chunks"]) > 1 and all(0 < c["tokens"] <= 400 for c in preview["chunks"])

    assert embedq("listen", "--drain", database_url=dsn).returncode == 0
    with psycopg.connect(dsn) as conn:
        stored = conn.execute(
            "SELECT chunk_index, content, content_hash FROM embedq.embeddings WHERE source_id = %s ORDER BY 1",
            (str(course),),
        ).fetchall()
    assert stored == [(c["index"], c["content"], c["content_hash"]) for c in preview["chunks"]]

    table = embedq("preview", "course", str(course), database_url=dsn)
    assert table.returncode == 0 and "Course: Bread" in table.stdout
    assert f"chunk {len(stored) - 1} (" in table.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("preview", "nope", "1"), "unknown content type 'nope'"),
        (("preview", "course", "424242"), "course 424242 does not exist in embedq_sample.courses"),
        (("preview", "course"), "Missing argument"),
    ],
)
def test_preview_of_what_does_not_exist(dsn, args, fragment):
    assert_one_line_error(embedq(*args, database_url=dsn), fragment)


def test_doctor_in_local_mode(dsn):
    result = embedq("doctor", "--json", database_url=dsn)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert [(c["name"], c["verdict"]) for c in report["checks"]][:4] == [
        ("database", "ok"),
        ("pgvector", "ok"),
        ("migrations", "ok"),
        ("provider", "ok"),
    ]


def test_doctor_names_the_failing_link_and_its_fix():
    result = embedq("doctor", database_url="postgresql://embedq:pw@127.0.0.1:1/nowhere")
    assert result.returncode == 1
    assert "database failed: cannot connect to postgresql://embedq:***@127.0.0.1:1/nowhere" in result.stdout
    assert "; fix: check DATABASE_URL" in result.stdout
