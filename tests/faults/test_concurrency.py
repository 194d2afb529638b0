"""6. Three listeners and two webhooks at once on a backlog, while the application keeps
updating and deleting the same rows: the final vectors must match the final rows exactly."""

from __future__ import annotations

import asyncio
import random
import time

from embedq import db
from tests.faults.harness import (
    RoundRobinProxy,
    assert_consistent,
    insert_posts,
    post_text,
    settle,
)
from tests.http_server import free_port, serve_app
from tests.qstash_server import QStashServer

SEED = 20261126


async def write_backlog(conn, rng: random.Random, rows: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < rows:
        ids += await insert_posts(conn, rng, min(1000, rows - len(ids)), len(ids) + 1)
    return ids


class Editor:
    """The application editing a small hot set of rows over and over (so the same rows are
    edited while they are being embedded), and deleting some of them."""

    def __init__(self, dsn: str, rng: random.Random, hot: list[int]) -> None:
        self.dsn = dsn
        self.rng = rng
        self.hot = list(hot)
        self.updates = 0
        self.deletes = 0

    async def run(self, seconds: float) -> None:
        conn = await db.connect(self.dsn, "faults-app")
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and self.hot:
                await self._update(conn, self.rng.sample(self.hot, min(20, len(self.hot))))
                if self.rng.random() < 0.3:
                    await self._delete(conn, self.rng.choice(self.hot))
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    async def _update(self, conn, ids: list[int]) -> None:
        texts = [post_text(self.rng, 1_000_000 + self.updates + i) for i in range(len(ids))]
        await conn.execute(
            "UPDATE embedq_sample.posts p SET title = u.title, body = u.body "
            "FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, title, body) WHERE p.id = u.id",
            ids,
            [t[0] for t in texts],
            [t[1] for t in texts],
        )
        self.updates += len(ids)

    async def _delete(self, conn, post_id: int) -> None:
        await conn.execute("DELETE FROM embedq_sample.posts WHERE id = $1", post_id)
        self.hot.remove(post_id)
        self.deletes += 1


async def test_three_listeners_and_two_webhooks_on_a_backlog_with_concurrent_edits(
    conn, dsn, provider, make_harness, fault_scale, record_figures
):
    rows = fault_scale.pick(1000, 20_000)
    rng = random.Random(SEED)
    ids = await write_backlog(conn, rng, rows)
    editor = Editor(dsn, rng, hot=rng.sample(ids, fault_scale.pick(100, 1000)))
    ports = [free_port(), free_port()]
    proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in ports])
    async with QStashServer(time_scale=0.02) as qstash, serve_app(proxy.app()) as proxy_url:
        public_url = f"{proxy_url}/v1/jobs"  # both replicas are reached, and sign-checked, as this one URL
        harness = make_harness(
            dsn,
            provider_url=provider.base_url,
            **qstash.env,
            EMBEDQ_WEBHOOK_URL=public_url,
            EMBEDQ_QSTASH_RETRIES="6",
            EMBEDQ_JOBS_PER_MESSAGE="50",
        )
        await asyncio.gather(*(harness.webhook(port, EMBEDQ_WEBHOOK_URL=public_url) for port in ports))
        # two listeners publishing to QStash, one in local mode embedding from the same queue itself
        await asyncio.gather(harness.listener(), harness.listener(), harness.listener(QSTASH_TOKEN=""))
        await editor.run(fault_scale.pick(4.0, 60.0))
        await settle(conn, harness, timeout=fault_scale.pick(180, 1200))
        await qstash.wait_idle(timeout=60)
        await proxy.aclose()

    checked = (await assert_consistent(conn, harness))["vectors_checked"]
    remaining = await conn.fetchval("SELECT count(*) FROM embedq_sample.posts")
    assert remaining == rows - editor.deletes
    assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == remaining
    assert editor.updates > 0 and editor.deletes > 0
    assert all(proxy.forwarded), f"a webhook replica got no delivery: {proxy.forwarded}"
    local = await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE message_id IS NULL AND status = 'done'")
    await record_figures(
        conn,
        "6 3 listeners + 2 webhooks",
        updates=editor.updates,
        deletes=editor.deletes,
        vectors_checked=checked,
        deliveries=sum(proxy.forwarded),
        done_locally=local,
    )
