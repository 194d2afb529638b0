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
