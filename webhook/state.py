"""What every route of the webhook reads: the settings, the pool, the job store, the processor,
the verifiers and the event hub, made once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from starlette.requests import Request

from embedq.processing import Processor
from embedq.providers.base import Embedder
from embedq.qstash.signature import SignatureVerifier
from embedq.settings import Settings
from embedq.store import JobStore
from embedq.webhook.events import EventHub


@dataclass
class State:
    settings: Settings
    pool: asyncpg.Pool
    store: JobStore
    embedder: Embedder
    processor: Processor
    verifiers: dict[str, SignatureVerifier]
    name: str
    events: EventHub


def state_of(request: Request) -> State:
    return request.app.state.embedq
