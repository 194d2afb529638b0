"""Read a Server-Sent Events stream the way a browser's EventSource does, for tests.

    async with http.stream("GET", url) as response:
        stream = SseStream(response)
        items = await stream.read(until=lambda items: len(items) == 3)
        more = await stream.read(until=...)   # continues where the last read stopped

Every dispatched block becomes an `Sse`: an event (`event`, `data`, `id`), or a position marker
(an `id:` line without data, which moves the client's Last-Event-ID and dispatches nothing in a
browser). Comments (keep-alive pings) are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Sse:
    id: str | None
    event: str | None
    data: Any

    @property
    def is_marker(self) -> bool:
        return self.data is None and self.id is not None


class SseStream:
    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.fields: dict[str, str] = {}

    async def read(self, *, until: Callable[[list[Sse]], bool], timeout: float = 20.0) -> list[Sse]:
        """The blocks received from now until `until(blocks)` holds."""
        items: list[Sse] = []

        async def read() -> None:
            async for line in self.lines:
                if line == "":
                    if self.fields:
                        data = json.loads(self.fields["data"]) if "data" in self.fields else None
                        items.append(Sse(self.fields.get("id"), self.fields.get("event"), data))
                        self.fields = {}
                        if until(items):
                            return
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                self.fields[name] = value.removeprefix(" ")

        try:
            await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"the stream did not deliver what was awaited in {timeout} s; got {items}") from None
        return items


async def read_sse(response: httpx.Response, *, until: Callable[[list[Sse]], bool], timeout: float = 20.0) -> list[Sse]:
    """One read of a stream that is read once."""
    return await SseStream(response).read(until=until, timeout=timeout)


def events(items: list[Sse]) -> list[Sse]:
    """The dispatched events, without position markers."""
    return [item for item in items if not item.is_marker]


def last_id(items: list[Sse]) -> str | None:
    return next((item.id for item in reversed(items) if item.id is not None), None)
