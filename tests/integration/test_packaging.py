"""A plain (non-editable) install works: the wheel carries the SQL files, the migrations and the
dashboard, and `embedq migrate` from it builds the schema of a new database."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg

import embedq
from embedq import migrations

REPO = Path(__file__).resolve().parents[2]


def test_the_wheel_alone_migrates_a_new_database(tmp_path, embedded_server):
    # built from a copy: a build/ folder left in the checkout would lend the wheel stale files
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".embedq", "__pycache__", ".*_cache"),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("embedq-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    # one import name: the top-level folders (listener/, webhook/, sql/, alembic/) map into it
    assert {name.split("/")[0] for name in shipped if ".dist-info/" not in name} == {"embedq"}
    folders = {
        "sql": "embedq/sql",
        "alembic": "embedq/alembic",
        "listener": "embedq/listener",
        "webhook": "embedq/webhook",
        "embedq": "embedq",
    }
    runtime_files = [
        *REPO.glob("embedq/**/*.py"),
        *REPO.glob("embedq/data/*.json"),
        *REPO.glob("sql/**/*.sql"),
        *REPO.glob("alembic/**/*.py"),
        *REPO.glob("listener/*.py"),
        *REPO.glob("webhook/*.py"),
        REPO / "webhook" / "dashboard.html",
    ]
    expected = {
        folders[f.relative_to(REPO).parts[0]] + "/" + "/".join(f.relative_to(REPO).parts[1:]) for f in runtime_files
    }
    assert expected <= shipped
    assert {"embedq/py.typed", f"embedq-{embedq.__version__}.dist-info/licenses/LICENSE"} <= shipped
    metadata = zipfile.ZipFile(wheel).read(f"embedq-{embedq.__version__}.dist-info/METADATA").decode()
    assert f"\nVersion: {embedq.__version__}\n" in metadata

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS embedq_wheel")
        admin.execute("CREATE DATABASE embedq_wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env.update(
        PYTHONPATH=str(target),
        DATABASE_URL=f"postgresql://postgres@/embedq_wheel?host={embedded_server.host}&port=5432",
    )
    try:
        # run from elsewhere, so nothing of the checkout can be picked up
        where = subprocess.run(
            [sys.executable, "-c", "import embedq; print(embedq.__file__)"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        assert where.stdout.startswith(str(target))
        migrated = subprocess.run(
            [sys.executable, "-m", "embedq", "migrate"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert migrated.returncode == 0, migrated.stderr
        assert f"-> {migrations.head()}" in migrated.stdout
    finally:
        with psycopg.connect(embedded_server.uri, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS embedq_wheel WITH (FORCE)")
