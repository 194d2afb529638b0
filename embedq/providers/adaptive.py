"""How many requests a remote provider gets at once, adapted to what it answers.

Additive increase, multiplicative decrease (TCP's rule, as AWS's SDKs apply it to throttling):
- a 429 (the provider's rate limit) halves the limit at once;
- a response much slower than the fastest seen lately (the provider queueing our requests)
  takes one away;
- otherwise, after `limit` answers in a row, one more request may be in flight.

`AdaptiveLimit` is pure state (tested by tables); `AdaptiveSemaphore` enforces it for asyncio.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

#: a response this many times slower than the fastest recent one counts as congestion
CONGESTION_FACTOR = 3.0
#: the fastest recent latency forgets old answers this fast (per answer), so a provider that
#: became slower for good is not treated as congested forever
LATENCY_FLOOR_DRIFT = 1.02


@dataclass
class AdaptiveLimit:
    limit: int
    maximum: int
    minimum: int = 1
    latency_floor: float | None = None
    _streak: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.limit <= self.maximum:
            raise ValueError("need 1 <= minimum <= limit <= maximum")

    def on_throttled(self) -> None:
        self.limit = max(self.minimum, self.limit // 2)
        self._streak = 0

    def on_answer(self, latency: float) -> None:
        floor = self.latency_floor
        self.latency_floor = latency if floor is None else min(latency, floor * LATENCY_FLOOR_DRIFT)
        if floor is not None and latency > CONGESTION_FACTOR * floor and self.limit > self.minimum:
            self.limit -= 1
            self._streak = 0
            return
        self._streak += 1
        if self._streak >= self.limit and self.limit < self.maximum:
            self.limit += 1
            self._streak = 0


class AdaptiveSemaphore:
    """A semaphore whose size follows an AdaptiveLimit: shrinking it never cancels what runs."""

    def __init__(self, limit: AdaptiveLimit) -> None:
        self.limit = limit
        self.in_use = 0
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> AdaptiveSemaphore:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_use < self.limit.limit)
            self.in_use += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._changed:
            self.in_use -= 1
            self._changed.notify_all()

    async def changed(self) -> None:
        """Wake waiters after the limit grew."""
        async with self._changed:
            self._changed.notify_all()
