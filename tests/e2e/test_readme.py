"""The README's Python examples, run as written: each one a plain script in its own process,
against the real database, with a real `embedq listen` next to it and the default local model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"<!-- README test: (?P<name>[\w-]+) -->\n```python\n(?P<code>.*?)```", re.DOTALL)


def readme_examples() -> dict[str, str]:
    return {m["name"]: m["code"] for m in EXAMPLE.finditer((ROOT / "README.md").read_text(encoding="utf-8"))}


def test_the_readme_marks_its_examples():
    assert set(readme_examples()) == {"python-api", "async-api", "sqlalchemy"}


@pytest.fixture
def environment(dsn) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env["DATABASE_URL"] = dsn
    return env


@pytest.fixture
def listener(environment, tmp_path):
    log = (tmp_path / "listener.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "embedq", "listen"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=60) == 0, (tmp_path / "listener.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def run_example(name: str, environment: dict[str, str], tmp_path: Path) -> str:
    script = tmp_path / f"readme_{name.replace('-', '_')}.py"  # not sqlalchemy.py: it would shadow the library
    script.write_text(readme_examples()[name], encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_the_python_examples_run_as_written(environment, listener, tmp_path):
    written = run_example("python-api", environment, tmp_path)
    assert "article 1  Sourdough at home" in written
    assert written.splitlines()[-1] == "current"

    asynchronous = run_example("async-api", environment, tmp_path)
    assert re.search(r"^0\.\d{3}  1$", asynchronous, re.MULTILINE)
    assert asynchronous.splitlines()[-1] == "1 jobs done"

    with_sqlalchemy = run_example("sqlalchemy", environment, tmp_path).splitlines()
    assert re.fullmatch(r"0\.\d{3}  Sourdough at home", with_sqlalchemy[0])
    assert with_sqlalchemy[1] == "1 0 multilingual-e5-small 384"
