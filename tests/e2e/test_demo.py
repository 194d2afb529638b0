"""`embedq demo` as a new user runs it: a real process, no DATABASE_URL, a new data directory
(the embedded PostgreSQL starts there), and again on the same directory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_demo(data_dir) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_", "DATABASE_"))}
    env["EMBEDQ_DATA_DIR"] = str(data_dir)
    env["COLUMNS"] = "200"  # rich wraps tables at the terminal width
    return subprocess.run(
        [sys.executable, "-m", "embedq", "demo"], env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_the_demo_runs_on_a_new_data_directory_and_again(tmp_path):
    data_dir = tmp_path / "d"  # short: the server's socket lives in it
    first = run_demo(data_dir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    assert "sample rows written: 9 profiles, 10 courses" in first.stdout
    assert " 0 failed, 0 dead" in first.stdout
    # the sample searches find what they should: the Chinese course from a Chinese question, ...
    assert "search: 第一次做麻婆豆腐要注意什么" in first.stdout
    assert "麻婆豆腐" in first.stdout.split("search: 第一次做麻婆豆腐要注意什么", 1)[1].split("search:", 1)[0]

    second = run_demo(data_dir)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "sample rows already present" in second.stdout
    assert "search: learn to cook spicy Sichuan food at home" in second.stdout
