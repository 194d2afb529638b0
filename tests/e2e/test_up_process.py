"""`embedq up` as a user runs it: one process with listener, webhook and schedules, in QStash mode."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx

from tests.http_server import free_port
from tests.qstash_server import QStashServer


async def test_up_delivers_through_qstash_and_stops_on_sigterm(conn, dsn):
    async with QStashServer(time_scale=0.001) as qstash:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
        env.update(
            qstash.env,
            DATABASE_URL=dsn,
            EMBEDQ_WEBHOOK_URL=f"http://127.0.0.1:{port}/v1/jobs",
            EMBEDQ_POLL_INTERVAL="0.5",
            EMBEDQ_LOG_FORMAT="json",
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "embedq", "up", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            async with httpx.AsyncClient() as http:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.2)
            await conn.execute("INSERT INTO embedq_sample.posts (title, body) VALUES ('Through QStash', 'and back')")
            for _ in range(600):
                if await conn.fetchval("SELECT count(*) FROM embedq.embeddings"):
                    break
                await asyncio.sleep(0.1)
            assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 1
            assert await conn.fetchval("SELECT message_id IS NOT NULL FROM embedq.jobs")  # it went via QStash
            assert sorted(qstash.schedules) == ["embedq-maintenance-daily", "embedq-retry-failed-weekly"]
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
        finally:
            process.kill()
        assert process.returncode == 0, stderr
        assert '"action": "publish"' in stderr
        assert qstash.token not in stderr and qstash.current_signing_key not in stderr
