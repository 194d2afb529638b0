"""A circuit breaker around QStash: after a few failed publishes in a row the listener
processes jobs itself; after a cool-down one trial publish decides whether QStash takes over
again. Pure state, driven by an injectable clock, tested by tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # QStash publishes
    OPEN = "open"  # QStash is failing: process locally until the cool-down ends
    HALF_OPEN = "half_open"  # one trial publish is allowed


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    cool_down: float = 30.0
    clock: Callable[[], float] = time.monotonic
    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = field(default=0.0)

    def allows_publish(self) -> bool:
        if self.state is BreakerState.OPEN and self.clock() - self.opened_at >= self.cool_down:
            self.state = BreakerState.HALF_OPEN
        return self.state is not BreakerState.OPEN

    def record_success(self) -> None:
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN or self.consecutive_failures >= self.failure_threshold:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock()

    def trip(self) -> None:
        """Open now (QStash did not answer at start): process locally until the cool-down ends."""
        self.state = BreakerState.OPEN
        self.opened_at = self.clock()
