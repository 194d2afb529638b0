"""The recurring tasks (embedq.schedules.SCHEDULES) as QStash schedules: each calls the signed
POST /v1/maintenance, which any webhook replica answers.

A process starts whatever QStash answers: `QStashSchedules` upserts them in the background,
says once (one warning line) why it cannot yet, and tries again every EMBEDQ_BREAKER_COOLDOWN
until QStash answers, then ends.
"""

from __future__ import annotations

import json
import logging

import httpx

from embedq.periodic import PeriodicService
from embedq.qstash.client import QStashCallError, QStashClient, problem_of
from embedq.schedules import SCHEDULES
from embedq.settings import Settings

logger = logging.getLogger(__name__)


async def upsert_qstash_schedules(settings: Settings) -> list[str]:
    """Create or replace the schedules (same ids each time, so restarts do not pile them up).
    QStashCallError when QStash does not take them."""
    from qstash.errors import QStashError  # deferred: QStash mode only

    destination = settings.public_url("/v1/maintenance")
    if destination is None:
        raise ValueError("EMBEDQ_WEBHOOK_URL is needed for QStash schedules")
    async with QStashClient.from_settings(settings) as client:
        try:
            return [
                await client.sdk.schedule.create(
                    destination=destination,
                    cron=item.cron,
                    schedule_id=item.schedule_id,
                    body=json.dumps({"task": item.task}),
                    content_type="application/json",
                    retries=settings.qstash_retries,
                )
                for item in SCHEDULES
            ]
        except (QStashError, httpx.HTTPError, OSError) as exc:
            raise QStashCallError(f"QStash did not take the schedules: {exc}", problem_of(exc)) from exc


class QStashSchedules(PeriodicService):
    """Upserts the QStash schedules once QStash answers, then ends."""

    action = "schedules"

    def __init__(self, settings: Settings, interval: float | None = None) -> None:
        super().__init__(settings.breaker_cooldown if interval is None else interval)
        self.settings = settings
        self.failures = 0

    async def run_once(self) -> bool:
        try:
            ids = await upsert_qstash_schedules(self.settings)
        except QStashCallError as exc:
            self.failures += 1
            if self.failures == 1:  # the listener's start-up check warns of the same cause
                logger.info(
                    f"{exc.hint}: the QStash schedules are upserted once it answers "
                    f"(tried again every {self.interval:g} s)",
                    extra={"action": self.action, "problem": exc.problem, "error": str(exc)},
                )
            else:
                logger.debug("QStash schedules not upserted yet", extra={"action": self.action, "error": str(exc)})
            return False
        logger.info("QStash schedules upserted", extra={"action": self.action, "schedules": ids})
        return True
