"""The fault-injection suite: real processes, broken on purpose.

`make test` runs every scenario at a short scale; `make faults` (``pytest tests/faults
--faults-long``) runs the long version the issue asks for (5,000-row loads, a 20,000-row backlog,
30-second outages, many more hypothesis examples).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class FaultScale:
    long: bool

    def pick(self, short, long):
        """The short value under `make test`, the long one under `make faults`."""
        return long if self.long else short


@pytest.fixture(scope="session")
def fault_scale(request: pytest.FixtureRequest) -> FaultScale:
    return FaultScale(long=bool(request.config.getoption("--faults-long")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


# -- process harness, fake provider, figures (tests/faults/harness.py, figures.py) ------------

HARNESSES = pytest.StashKey[list]()
FIGURES = pytest.StashKey[list]()


@pytest.fixture
async def provider():
    """The fake OpenAI-compatible provider the embedq processes call (in this process)."""
    from tests.faults.harness import DIMENSIONS, TimedFakeOpenAIServer

    async with TimedFakeOpenAIServer(dimensions=DIMENSIONS) as server:
        yield server


@pytest.fixture
def make_harness(request: pytest.FixtureRequest, tmp_path):
    """make_harness(dsn, **env) -> Harness; every process it started is killed at the end, and
    the tails of their logs are added to the report of a failed test."""
    from tests.faults.harness import Harness

    made: list = []
    request.node.stash[HARNESSES] = made

    def make(dsn: str, *, provider_url: str, **env: str) -> Harness:
        log_dir = tmp_path / f"logs-{len(made) + 1}"
        log_dir.mkdir()
        harness = Harness(dsn, log_dir, provider_url=provider_url, **env)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.kill_all()


@pytest.fixture
async def background():
    """background(coroutine) -> task. Tasks still running when the test ends (it failed before
    awaiting them) are cancelled and awaited, so they close their connections."""
    import asyncio

    tasks: list[asyncio.Task] = []

    def start(coroutine) -> asyncio.Task:
        task = asyncio.create_task(coroutine)
        tasks.append(task)
        return task

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def record_figures(request: pytest.FixtureRequest, fault_scale: FaultScale):
    """record_figures(conn, scenario, **notes): measure the scenario's figures for the summary."""
    from tests.faults.figures import measure

    async def record(conn, scenario: str, **notes):
        figures = await measure(conn, scenario, "long" if fault_scale.long else "short", **notes)
        request.config.stash.setdefault(FIGURES, []).append(figures)
        return figures

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for harness in item.stash.get(HARNESSES, []):
            report.sections.append(("embedq processes", harness.tails()))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from tests.faults.figures import figures_path, save, table

    figures = config.stash.get(FIGURES, [])
    if not figures:
        return
    path = figures_path()
    save(figures, path)
    terminalreporter.write_sep("=", "fault-injection figures")
    terminalreporter.write_line(table(figures))
    terminalreporter.write_line(f"(written to {path})")
