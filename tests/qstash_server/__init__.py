"""A QStash-compatible server for tests and local development (`python -m tests.qstash_server`).

from tests.qstash_server import QStashServer, sign

async with QStashServer(time_scale=0.001) as qstash:
    ...
"""

from tests.http_server import serve_app
from tests.qstash_server.broker import Counters
from tests.qstash_server.messages import Attempt, DeadLetter, Message, Schedule
from tests.qstash_server.server import (
    DEFAULT_CURRENT_SIGNING_KEY,
    DEFAULT_NEXT_SIGNING_KEY,
    DEFAULT_TOKEN,
    QStashServer,
)
from tests.qstash_server.signing import body_hash, claims, encode, sign

__all__ = [
    "DEFAULT_CURRENT_SIGNING_KEY",
    "DEFAULT_NEXT_SIGNING_KEY",
    "DEFAULT_TOKEN",
    "Attempt",
    "Counters",
    "DeadLetter",
    "Message",
    "QStashServer",
    "Schedule",
    "body_hash",
    "claims",
    "encode",
    "serve_app",
    "sign",
]
