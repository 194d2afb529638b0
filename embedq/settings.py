"""Every setting embedq reads, in one place.

`Settings.from_env()` reads `os.environ`; tests pass their own mapping. A bad value fails at
start-up with a message naming the variable, never later in the middle of a batch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from embedq.errors import ConfigError

T = TypeVar("T")
D = TypeVar("D")

LOCAL_MODEL = "multilingual-e5-small"
LOCAL_DIMENSIONS = 384
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_DEFAULT_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
PROVIDERS = ("local", "openai")


@dataclass(frozen=True)
class ProviderDefaults:
    """What the listener claims and sends at once, chosen from the provider (bench/throughput.py).
    An explicit EMBEDQ_BATCH_SIZE, EMBEDQ_CONCURRENCY or EMBEDQ_OPENAI_BATCH_SIZE wins."""

    #: jobs per claim
    batch_size: int
    #: claims processed at once per listener
    concurrency: int
    #: inputs per provider request
    request_inputs: int


PROVIDER_DEFAULTS = {
    # one model on the listener's CPU: small batches keep latency low, one at a time
    "local": ProviderDefaults(batch_size=64, concurrency=1, request_inputs=2048),
    # a remote API waits on the network: large claims, several at once, each split into requests
    # that run side by side (their number adapts to the provider's answers and 429s)
    "openai": ProviderDefaults(batch_size=512, concurrency=4, request_inputs=256),
}
LOG_FORMATS = ("human", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _parse(env: Mapping[str, str], name: str, convert: Callable[[str], T], default: D) -> T | D:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return convert(raw.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not valid: {exc}") from None


def _database_url(env: Mapping[str, str]) -> str | None:
    """DATABASE_URL, checked as a URL. Never echoed back: it may hold a password."""
    raw = (env.get("DATABASE_URL") or "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("expected postgresql://user:password@host:port/database")
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL is not a valid PostgreSQL URL: {exc}") from None
    return raw


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a finite number > 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number >= 0")
    return value


@dataclass(frozen=True)
class PriorityTier:
    """Priorities `first` to `last` (both included, 1 = most urgent). In QStash mode each tier is
    published under its own flow-control key, with its own parallelism (None: the tier takes
    EMBEDQ_QSTASH_PARALLELISM) and its own cap of jobs in flight, so no tier queues behind another."""

    first: int
    last: int
    parallelism: int | None = None

    @property
    def name(self) -> str:
        return f"p{self.first}" if self.first == self.last else f"p{self.first}-{self.last}"


#: the latency targets embedq is designed for: 1-2 within 10 s, 3-4 within a minute, 5-9 within 5 minutes
DEFAULT_TIERS = (PriorityTier(1, 2), PriorityTier(3, 4), PriorityTier(5, 9))
PRIORITIES = range(1, 10)
#: jobs of one tier in flight: enough to keep the tier's deliveries busy while the listener refills
#: (8 deliveries of 100 jobs); bench/priorities.py drains a 20,000-job backlog as fast with 1,000
#: as with 4,000, and 0.8x as fast with 500, 0.7x with 200
DEFAULT_DISPATCH_MAX_IN_FLIGHT = 1000


def _tiers(raw: str) -> tuple[PriorityTier, ...]:
    """`1-2,3-4,5-9`, each tier optionally with its parallelism: `1-2:4,3-4:2,5-9:2`. The tiers
    must cover priorities 1 to 9 in order, without gaps or overlaps."""
    tiers = []
    for item in raw.split(","):
        bounds, _, parallelism = item.strip().partition(":")
        first, _, last = bounds.partition("-")
        try:
            tier = PriorityTier(
                int(first), int(last or first), _positive_int(parallelism) if parallelism.strip() else None
            )
        except ValueError:
            raise ValueError(f"{item.strip()!r} is not a tier like 1-2 or 1-2:4 (priorities:parallelism)") from None
        tiers.append(tier)
    expected_first = PRIORITIES.start
    for tier in tiers:
        if tier.first != expected_first or tier.last < tier.first:
            raise ValueError(f"tiers must cover priorities 1 to 9 in order; {tier.name} does not follow on")
        expected_first = tier.last + 1
    if expected_first != PRIORITIES.stop:
        raise ValueError("tiers must cover priorities 1 to 9; the last one must end at 9")
    return tuple(tiers)


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return raw.lower()

    return convert


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = Path(".embedq")
    application_name: str = "embedq"

    provider: str = "local"
    model: str = LOCAL_MODEL
    dimensions: int = LOCAL_DIMENSIONS
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    #: the most requests in flight at once; embedq starts at a quarter and adapts to the answers
    openai_concurrency: int = 16
    #: inputs per request: OpenAI takes 2048, TEI 32 by default (--max-client-batch-size)
    openai_batch_size: int = PROVIDER_DEFAULTS["openai"].request_inputs
    openai_max_retries: int = 4
    openai_timeout: float = 60.0

    qstash_token: str | None = field(default=None, repr=False)
    qstash_url: str | None = None
    qstash_current_signing_key: str | None = field(default=None, repr=False)
    qstash_next_signing_key: str | None = field(default=None, repr=False)
    webhook_url: str | None = None
    #: jobs claimed per publish call, and per QStash message
    dispatch_batch: int = 1000
    jobs_per_message: int = 100
    #: how long a published message may take (QStash's retries included) before it is re-published
    dispatch_timeout: float = 3600.0
    qstash_retries: int = 3
    #: deliveries QStash runs at once per priority tier (flow control): bounds the load on the provider
    qstash_parallelism: int = 8
    #: priority tiers, each with its own flow-control key, parallelism and cap of jobs in flight
    qstash_tiers: tuple[PriorityTier, ...] = DEFAULT_TIERS
    #: jobs of one tier published and not yet done; the rest wait in the outbox, most urgent first
    dispatch_max_in_flight: int = DEFAULT_DISPATCH_MAX_IN_FLIGHT
    breaker_failures: int = 3
    breaker_cooldown: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1_000_000
    #: the listener serves Prometheus metrics on this port (unset: not served)
    metrics_port: int | None = None
    #: token for the operator dashboard and admin routes (unset: they answer 403)
    admin_token: str | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)

    batch_size: int = 64
    batch_window: float = 0.2
    batch_window_min_priority: int = 4
    poll_interval: float = 5.0
    lease_seconds: float = 300.0
    rescue_interval: float = 30.0
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 3600.0
    concurrency: int = 1
    chunk_tokens: int = 400
    chunk_overlap_tokens: int = 48
    hnsw_min_rows: int = 10_000

    log_format: str = "human"
    log_level: str = "INFO"

    #: the jobs of a listener or webhook that stopped heartbeating run again within this long
    #: (embedq.workers: it heartbeats every tenth of it, and is taken for dead unseen for two thirds)
    worker_timeout: float = 30.0
    #: QStash messages of a job that may end without an outcome before a listener processes it itself
    max_failed_deliveries: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        provider = _parse(env, "EMBEDQ_PROVIDER", _choice(PROVIDERS), "local")
        api_key = env.get("OPENAI_API_KEY") or None
        base_url = env.get("OPENAI_BASE_URL") or None

        if provider == "local":
            model = _parse(env, "EMBEDQ_MODEL", str, LOCAL_MODEL)
            if model != LOCAL_MODEL:
                raise ConfigError(
                    f"EMBEDQ_MODEL={model!r}: the local provider only ships {LOCAL_MODEL!r} "
                    "(set EMBEDQ_PROVIDER=openai for other models)"
                )
            dimensions = _parse(env, "EMBEDQ_DIMENSIONS", _positive_int, LOCAL_DIMENSIONS)
            if dimensions != LOCAL_DIMENSIONS:
                raise ConfigError(f"EMBEDQ_DIMENSIONS={dimensions}: {LOCAL_MODEL} has {LOCAL_DIMENSIONS} dimensions")
        else:
            if api_key is None and base_url is None:
                raise ConfigError(
                    "EMBEDQ_PROVIDER=openai needs OPENAI_API_KEY "
                    "(or OPENAI_BASE_URL for a keyless OpenAI-compatible server)"
                )
            model = _parse(env, "EMBEDQ_MODEL", str, OPENAI_DEFAULT_MODEL)
            default_dims = OPENAI_DEFAULT_DIMENSIONS.get(model)
            openai_dimensions = _parse(env, "EMBEDQ_DIMENSIONS", _positive_int, default_dims)
            if openai_dimensions is None:
                raise ConfigError(
                    f"EMBEDQ_DIMENSIONS is required for model {model!r} (its size is not known to embedq)"
                )
            dimensions = openai_dimensions

        qstash_token = env.get("QSTASH_TOKEN") or None
        webhook_url = env.get("EMBEDQ_WEBHOOK_URL") or None
        if qstash_token and not webhook_url:
            raise ConfigError("QSTASH_TOKEN is set but EMBEDQ_WEBHOOK_URL (the URL QStash calls) is not")

        defaults = PROVIDER_DEFAULTS[provider]
        settings = cls(
            database_url=_database_url(env),
            data_dir=Path(env.get("EMBEDQ_DATA_DIR") or ".embedq"),
            application_name=env.get("EMBEDQ_APPLICATION_NAME") or "embedq",
            provider=provider,
            model=model,
            dimensions=dimensions,
            openai_api_key=api_key,
            openai_base_url=base_url,
            openai_concurrency=_parse(env, "EMBEDQ_OPENAI_CONCURRENCY", _positive_int, 16),
            openai_batch_size=_parse(env, "EMBEDQ_OPENAI_BATCH_SIZE", _positive_int, defaults.request_inputs),
            openai_max_retries=_parse(env, "EMBEDQ_OPENAI_MAX_RETRIES", int, 4),
            openai_timeout=_parse(env, "EMBEDQ_OPENAI_TIMEOUT", _non_negative_float, 60.0),
            qstash_token=qstash_token,
            qstash_url=env.get("QSTASH_URL") or None,
            qstash_current_signing_key=env.get("QSTASH_CURRENT_SIGNING_KEY") or None,
            qstash_next_signing_key=env.get("QSTASH_NEXT_SIGNING_KEY") or None,
            webhook_url=webhook_url,
            dispatch_batch=_parse(env, "EMBEDQ_DISPATCH_BATCH", _positive_int, 1000),
            jobs_per_message=_parse(env, "EMBEDQ_JOBS_PER_MESSAGE", _positive_int, 100),
            dispatch_timeout=_parse(env, "EMBEDQ_DISPATCH_TIMEOUT", _non_negative_float, 3600.0),
            qstash_retries=_parse(env, "EMBEDQ_QSTASH_RETRIES", int, 3),
            qstash_parallelism=_parse(env, "EMBEDQ_QSTASH_PARALLELISM", _positive_int, 8),
            qstash_tiers=_parse(env, "EMBEDQ_QSTASH_TIERS", _tiers, DEFAULT_TIERS),
            dispatch_max_in_flight=_parse(
                env, "EMBEDQ_DISPATCH_MAX_IN_FLIGHT", _positive_int, DEFAULT_DISPATCH_MAX_IN_FLIGHT
            ),
            breaker_failures=_parse(env, "EMBEDQ_BREAKER_FAILURES", _positive_int, 3),
            breaker_cooldown=_parse(env, "EMBEDQ_BREAKER_COOLDOWN", _non_negative_float, 30.0),
            host=env.get("EMBEDQ_HOST") or "127.0.0.1",
            port=_parse(env, "EMBEDQ_PORT", _positive_int, 8000),
            max_body_bytes=_parse(env, "EMBEDQ_MAX_BODY_BYTES", _positive_int, 1_000_000),
            metrics_port=_parse(env, "EMBEDQ_METRICS_PORT", _positive_int, None),
            admin_token=env.get("EMBEDQ_ADMIN_TOKEN") or None,
            api_token=env.get("EMBEDQ_API_TOKEN") or None,
            batch_size=_parse(env, "EMBEDQ_BATCH_SIZE", _positive_int, defaults.batch_size),
            batch_window=_parse(env, "EMBEDQ_BATCH_WINDOW_MS", _non_negative_float, 200.0) / 1000,
            poll_interval=_parse(env, "EMBEDQ_POLL_INTERVAL", _non_negative_float, 5.0),
            lease_seconds=_parse(env, "EMBEDQ_LEASE_SECONDS", _non_negative_float, 300.0),
            rescue_interval=_parse(env, "EMBEDQ_RESCUE_INTERVAL", _positive_float, 30.0),
            max_attempts=_parse(env, "EMBEDQ_MAX_ATTEMPTS", _positive_int, 5),
            concurrency=_parse(env, "EMBEDQ_CONCURRENCY", _positive_int, defaults.concurrency),
            chunk_tokens=_parse(env, "EMBEDQ_CHUNK_TOKENS", _positive_int, 400),
            chunk_overlap_tokens=_parse(env, "EMBEDQ_CHUNK_OVERLAP_TOKENS", int, 48),
            hnsw_min_rows=_parse(env, "EMBEDQ_HNSW_MIN_ROWS", _positive_int, 10_000),
            log_format=_parse(env, "EMBEDQ_LOG_FORMAT", _choice(LOG_FORMATS), "human"),
            log_level=_parse(env, "EMBEDQ_LOG_LEVEL", _choice(LOG_LEVELS), "info").upper(),
            worker_timeout=_parse(env, "EMBEDQ_WORKER_TIMEOUT", _positive_float, 30.0),
            max_failed_deliveries=_parse(env, "EMBEDQ_MAX_FAILED_DELIVERIES", _positive_int, 2),
        )
        if settings.openai_batch_size > 2048:
            raise ConfigError("EMBEDQ_OPENAI_BATCH_SIZE must be at most 2048 (the OpenAI API's limit)")
        if settings.chunk_overlap_tokens >= settings.chunk_tokens:
            raise ConfigError("EMBEDQ_CHUNK_OVERLAP_TOKENS must be smaller than EMBEDQ_CHUNK_TOKENS")
        return replace(settings, **overrides) if overrides else settings

    @property
    def qstash_enabled(self) -> bool:
        return self.qstash_token is not None

    @property
    def webhook_base_url(self) -> str | None:
        """EMBEDQ_WEBHOOK_URL is the public URL of POST /v1/jobs; its base serves the other routes.
        A bare base URL is accepted too."""
        if self.webhook_url is None:
            return None
        url = self.webhook_url.rstrip("/")
        return url.removesuffix("/v1/jobs")

    def public_url(self, path: str) -> str | None:
        base = self.webhook_base_url
        return None if base is None else base + path

    def tier_parallelism(self, tier: PriorityTier) -> int:
        return tier.parallelism or self.qstash_parallelism

    @property
    def embedded(self) -> bool:
        return self.database_url is None
