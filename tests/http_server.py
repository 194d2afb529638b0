"""Run an ASGI app on uvicorn inside the running event loop, on 127.0.0.1 and a free port.

    async with serve_app(app) as url:   # "http://127.0.0.1:43817"
        ...

Usable for any test receiver, not only the QStash server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn

SHUTDOWN_POLL_SECONDS = 0.005


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (Ctrl-C stays with the host) and with a prompt stop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self.should_exit = True
        self._stopping.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._stopping.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown sleeps 0.1 s at least; a test suite stops many servers
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            async with asyncio.timeout(self.config.timeout_graceful_shutdown):
                while self.server_state.connections or self.server_state.tasks:
                    await asyncio.sleep(SHUTDOWN_POLL_SECONDS)
        except TimeoutError:
            for task in self.server_state.tasks:
                task.cancel(msg="graceful shutdown timed out")
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()  # the app's own shutdown: pools, listeners


@contextlib.asynccontextmanager
async def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve `app` until the block ends; yields its base URL. lifespan="on" runs the app's
    start-up and shut-down (a failed start-up raises here)."""
    config = uvicorn.Config(
        app,
        lifespan=lifespan,
        http="h11",
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only then,
    # and without it every keep-alive request waits ~40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        server = EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name=f"uvicorn:{sock.getsockname()[1]}")
        while not server.started:
            if task.done() or server.should_exit:
                task.result()
                raise RuntimeError("the embedded server stopped during start-up")
            await asyncio.sleep(0.002)
        try:
            yield f"http://{host}:{sock.getsockname()[1]}"
        finally:
            server.stop()
            await task
    finally:
        sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a server whose URL must be known before it starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
