"""Packaging basics: one version, a license that matches the metadata, typed, `embedq --version`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import embedq
from embedq.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_version_is_written_once(project):
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "embedq.__version__"}
    assert embedq.__version__.count(".") == 2


def test_embedq_version_prints_it(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"embedq {embedq.__version__}\n"


def test_the_license_file_is_the_license_the_metadata_names(project):
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")


def test_the_package_says_it_is_typed(project):
    assert (ROOT / "embedq" / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["embedq"]
    assert "Typing :: Typed" in project["project"]["classifiers"]


def test_the_metadata_has_urls_and_classifiers(project):
    assert {"Homepage", "Source", "Issues"} <= set(project["project"]["urls"])
    classifiers = project["project"]["classifiers"]
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")]  # the SPDX `license` says it


@pytest.mark.parametrize(
    ("code", "left_out"),
    [
        # the container's health check and `embedq --version`: no database driver, no model, no HTTP
        ("import embedq.healthcheck", ("asyncpg", "numpy", "openai", "uvicorn")),
        # `embedq listen` starts without the HTTP stack it does not serve, nor QStash's SDK (local mode)
        ("import embedq.cli, embedq.runner", ("uvicorn", "starlette", "embedq.webhook.app", "openai", "qstash")),
    ],
)
def test_start_up_imports_only_what_the_command_uses(code, left_out):
    check = f"import sys; {code}; print(' '.join(m for m in {left_out!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
