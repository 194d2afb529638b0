"""Run the QStash-compatible server standalone: `python -m tests.qstash_server --port 8080`.

The first line on stdout is the server's URL (a parent process can read it, with `--port 0`
too); the environment to point a client at it follows on stderr. Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from tests.qstash_server.server import (
    DEFAULT_CURRENT_SIGNING_KEY,
    DEFAULT_NEXT_SIGNING_KEY,
    DEFAULT_TOKEN,
    QStashServer,
)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.qstash_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (default: 8080)")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token clients must send (QSTASH_TOKEN)")
    parser.add_argument("--current-signing-key", default=DEFAULT_CURRENT_SIGNING_KEY)
    parser.add_argument("--next-signing-key", default=DEFAULT_NEXT_SIGNING_KEY)
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies delays, backoffs and Retry-After (default: 1)"
    )
    parser.add_argument("--no-cron", dest="run_cron", action="store_false", help="fire schedules only on demand")
    parser.add_argument("--verbose", action="store_true", help="log every delivery attempt")
    return parser.parse_args(argv)


async def serve(arguments: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    async with QStashServer(
        token=arguments.token,
        current_signing_key=arguments.current_signing_key,
        next_signing_key=arguments.next_signing_key,
        time_scale=arguments.time_scale,
        run_cron=arguments.run_cron,
        host=arguments.host,
        port=arguments.port,
    ) as qstash:
        print(qstash.url, flush=True)
        for name, value in qstash.env.items():
            print(f"{name}={value}", file=sys.stderr, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    if arguments.verbose:
        logging.getLogger("tests.qstash_server").setLevel(logging.INFO)
    asyncio.run(serve(arguments))


if __name__ == "__main__":
    main()
