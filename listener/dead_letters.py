"""The dead-letter reader: what QStash gave up on, when nobody told the webhook.

QStash reports a message it could not deliver to the failure callback (POST /v1/failures). When
the webhook cannot take that callback either (it is down, elsewhere, or refuses the signature:
the very reasons the delivery failed), the message only sits in QStash's DLQ, and without this
reader its jobs would wait for EMBEDQ_DISPATCH_TIMEOUT. Every EMBEDQ_RESCUE_INTERVAL, a listener
in QStash mode reads the DLQ entries of its webhook's URLs (GET /v2/dlq?url=...), records each
message's failed delivery on its jobs with the cause and the likely fix (embedq.qstash.deliveries:
published again, processed by a listener after EMBEDQ_MAX_FAILED_DELIVERIES, or dead out of
attempts), logs it, notes it for `embedq status`, and deletes the entry. Several listeners may
read the same entry: the second finds the jobs already taken care of.
"""

from __future__ import annotations

import asyncio
import json
import logging

from embedq import db
from embedq.operations import count_undelivered
from embedq.periodic import PeriodicService
from embedq.qstash.client import QStashCallError, QStashClient
from embedq.qstash.deliveries import Undelivered, from_dead_letter, from_failure_callback
from embedq.settings import Settings
from embedq.store import Store

logger = logging.getLogger(__name__)


class DeadLetterReader(PeriodicService):
    action = "dead_letters"
    default_interval = Settings.rescue_interval

    def __init__(
        self,
        store: Store,
        settings: Settings,
        worker: str,
        client: QStashClient | None = None,
        interval: float | None = None,
    ) -> None:
        super().__init__(settings.rescue_interval if interval is None else interval)
        self.store = store
        self.worker = worker
        self.client = client or QStashClient.from_settings(settings)
        self.jobs_url = settings.public_url("/v1/jobs") or ""
        self.failures_url = settings.public_url("/v1/failures") or ""
        self.unanswered = False

    async def run_once(self) -> bool:
        await self.read()
        return False

    async def read(self) -> list[Undelivered]:
        """One round: the undelivered messages found (and taken care of)."""
        try:
            entries = [from_dead_letter(e) for e in await self.client.dead_letters(self.jobs_url)]
            entries += [self._callback(e) for e in await self.client.dead_letters(self.failures_url)]
        except QStashCallError as exc:
            if not self.unanswered:  # said once; the breaker and the schedules say the rest
                logger.info("cannot read QStash's DLQ yet", extra={"action": self.action, "error": str(exc)})
            self.unanswered = True
            return []
        self.unanswered = False
        found = []
        for entry in entries:
            if entry.message_id:
                await self._take_care_of(entry)
                found.append(entry)
            if entry.dlq_id:
                try:
                    await self.client.delete_dead_letter(entry.dlq_id)
                except QStashCallError as exc:
                    logger.info("cannot delete a DLQ entry", extra={"action": self.action, "error": str(exc)})
        return found

    def _callback(self, entry: dict) -> Undelivered:
        """A failure callback QStash could not deliver either: the failed message is in its body."""
        dlq_id = entry.get("dlqId")
        try:
            failed = from_failure_callback(json.loads(entry.get("body") or ""))
        except (ValueError, TypeError, AttributeError):
            return Undelivered("", self.failures_url, None, dlq_id=dlq_id)
        return Undelivered(
            failed.message_id, failed.url, failed.status, failed.body, failed.headers, dlq_id, failed.job_ids
        )

    async def _take_care_of(self, entry: Undelivered) -> None:
        reason = f"QStash gave up: {entry.reason}"
        if not await count_undelivered(self.store, entry, reason):
            return  # reported before (the callback, another listener), or its jobs ended since
        await self.store.note_problem(self.worker, db.storable_text(reason)[:1000])

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            await self.client.aclose()
