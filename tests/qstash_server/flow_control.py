"""Flow control: `Upstash-Flow-Control-Key` + `Upstash-Flow-Control-Value: parallelism=4, rate=10, period=60s`.

One `FlowGate` per key bounds the deliveries in flight (`parallelism`) and the deliveries
started per period (`rate` per `period`, one second by default). The configuration of the
latest message published with a key applies to the key, as on QStash.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tests.qstash_server.durations import parse_duration

DEFAULT_PERIOD_SECONDS = 1.0


@dataclass(frozen=True)
class FlowControl:
    key: str
    parallelism: int | None = None
    rate: int | None = None
    period: float = DEFAULT_PERIOD_SECONDS

    @classmethod
    def parse(cls, key: str, value: str) -> FlowControl:
        """Read the header pair; raises ValueError on an unknown or malformed setting."""
        if not key:
            raise ValueError("Upstash-Flow-Control-Key must not be empty")
        settings: dict[str, str] = {}
        for item in value.split(","):
            if not item.strip():
                continue
            name, separator, setting = item.partition("=")
            if not separator:
                raise ValueError(f"invalid flow control setting {item.strip()!r}")
            settings[name.strip().lower()] = setting.strip()
        unknown = settings.keys() - {"parallelism", "rate", "period"}
        if unknown:
            raise ValueError(f"unknown flow control setting(s) {sorted(unknown)}")
        parallelism = _positive_int(settings, "parallelism")
        rate = _positive_int(settings, "rate")
        period = parse_duration(settings["period"]) if "period" in settings else DEFAULT_PERIOD_SECONDS
        if period <= 0:
            raise ValueError("flow control period must be positive")
        return cls(key=key, parallelism=parallelism, rate=rate, period=period)


def _positive_int(settings: dict[str, str], name: str) -> int | None:
    if name not in settings:
        return None
    value = int(settings[name])
    if value < 1:
        raise ValueError(f"flow control {name} must be at least 1")
    return value


class FlowGate:
    """Admits deliveries of one key; `period_scale` shrinks rate periods like the broker's delays."""

    def __init__(self, control: FlowControl, period_scale: float = 1.0) -> None:
        self.control = control
        self.active = 0
        self._period_scale = period_scale
        self._changed = asyncio.Condition()
        self._window_start = 0.0
        self._window_count = 0

    async def acquire(self) -> None:
        async with self._changed:
            while (wait := self._wait_needed()) != 0.0:
                try:
                    async with asyncio.timeout(wait):
                        await self._changed.wait()
                except TimeoutError:
                    pass
            self.active += 1
            self._window_count += 1

    async def release(self) -> None:
        async with self._changed:
            self.active -= 1
            self._changed.notify_all()

    def _wait_needed(self) -> float | None:
        """0.0 to go now, None to wait for a release, else seconds until the rate window opens."""
        control = self.control
        if control.parallelism is not None and self.active >= control.parallelism:
            return None
        if control.rate is None:
            return 0.0
        now = time.monotonic()
        period = control.period * self._period_scale
        if now - self._window_start >= period:
            self._window_start, self._window_count = now, 0
        if self._window_count < control.rate:
            return 0.0
        return self._window_start + period - now
