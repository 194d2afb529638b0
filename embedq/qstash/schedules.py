"""The recurring tasks (embedq.schedules.SCHEDULES) as QStash schedules: each calls the signed
POST /v1/maintenance, which any webhook replica answers."""

from __future__ import annotations

import json

from embedq.qstash.client import QStashClient
from embedq.schedules import SCHEDULES
from embedq.settings import Settings


async def upsert_qstash_schedules(settings: Settings) -> list[str]:
    """Create or replace the schedules (same ids each time, so restarts do not pile them up)."""
    destination = settings.public_url("/v1/maintenance")
    if destination is None:
        raise ValueError("EMBEDQ_WEBHOOK_URL is needed for QStash schedules")
    async with QStashClient.from_settings(settings) as client:
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
