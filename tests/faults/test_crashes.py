"""Processes killed with SIGKILL in the middle of their work: nothing may be lost, stuck or
embedded twice.

1. `embedq listen` killed at random moments during a load, restarted each time.
2. `embedq serve` (the webhook QStash calls) killed mid-batch while QStash keeps retrying.
3. `embedq listen` killed with the default lease: the other listener notices it stopped
   heartbeating, and its jobs run again within EMBEDQ_WORKER_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import random

from tests.faults.harness import (
    LEASE_SECONDS,
    RESCUE_INTERVAL,
    LeaseWatch,
    assert_consistent,
    settle,
    wait_until,
    write_load,
)
from tests.http_server import free_port
from tests.qstash_server import QStashServer

SEED = 20261123


async def jobs_in_hand(conn, locked_by_prefix: str = "") -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM embedq.jobs WHERE status = 'processing' AND locked_by LIKE $1", locked_by_prefix + "%"
    )


async def wait_for_jobs_in_hand(conn, locked_by_prefix: str = "", timeout: float = 10.0) -> None:
    """Until some worker holds claimed jobs (a kill now interrupts a batch); gives up quietly."""

    async def holding() -> bool:
        return await jobs_in_hand(conn, locked_by_prefix) > 0

    try:
        await wait_until(holding, timeout, interval=0.005)
    except AssertionError:
        pass


async def leases_lapsed(conn) -> bool:
    return not await conn.fetchval(
        "SELECT count(*) FROM embedq.jobs WHERE status = 'processing' AND lease_expires_at > now()"
    )


async def test_listener_killed_at_random_moments_during_a_load(
    conn, dsn, provider, make_harness, fault_scale, background, record_figures
):
    rows = fault_scale.pick(400, 5000)
    kills = fault_scale.pick(2, 5)
    # Short scale: restarted once the killed listener's leases have lapsed (its start-up rescue
    # returns them at once). Long scale: restarted at once, so the jobs wait for the rescuer.
    restart_at_once = fault_scale.long
    rng = random.Random(SEED)
    provider.latency = 0.03  # batches take a moment, so kills land in the middle of them
    harness = make_harness(dsn, provider_url=provider.base_url, EMBEDQ_BATCH_SIZE="32")
    listener = await harness.listener()
    killed_in_hand = []
    async with LeaseWatch(dsn) as watch:
        load = background(write_load(dsn, rng, rows, pause=fault_scale.pick(0.1, 0.05)))
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            await wait_for_jobs_in_hand(conn)
            listener.kill()
            killed_in_hand.append(await jobs_in_hand(conn))
            if not restart_at_once:
                await wait_until(lambda: leases_lapsed(conn), LEASE_SECONDS + 10)
            listener = await harness.restart(listener)
        ids = await load
        await settle(conn, harness, timeout=fault_scale.pick(120, 900))

    assert sum(killed_in_hand) > 0, "no kill interrupted a batch: the scenario tested nothing"
    await assert_consistent(conn, harness)
    embedded = await conn.fetchval(
        "SELECT count(DISTINCT source_id) FROM embedq.embeddings WHERE content_type = 'post'"
    )
    assert embedded == len(ids) == rows
    # A killed listener's jobs come back once their lease is over, at the rescuer's next round.
    assert watch.max_overdue < RESCUE_INTERVAL + 5, f"a job stayed {watch.max_overdue:.1f} s past its lease"
    await record_figures(
        conn,
        "1 listener kill -9",
        kills=kills,
        in_hand_at_kill=sum(killed_in_hand),
        max_lease_overdue_s=round(watch.max_overdue, 1),
    )


async def test_webhook_killed_mid_batch_while_qstash_retries(
    conn, dsn, provider, make_harness, fault_scale, background, record_figures
):
    rows = fault_scale.pick(300, 3000)
    kills = fault_scale.pick(1, 3)
    rng = random.Random(SEED + 2)
    provider.latency = 0.03
    port = free_port()
    # time_scale 0.02: QStash's retry schedule (12 s, 2m28s, 30m) runs as 0.24 s, 3 s, 36 s
    async with QStashServer(time_scale=0.02) as qstash:
        harness = make_harness(
            dsn,
            provider_url=provider.base_url,
            **qstash.env,
            EMBEDQ_WEBHOOK_URL=f"http://127.0.0.1:{port}/v1/jobs",
            EMBEDQ_QSTASH_RETRIES="6",
            EMBEDQ_JOBS_PER_MESSAGE="25",
        )
        webhook = await harness.webhook(port)
        await harness.listener()
        killed_in_hand = []
        load = background(write_load(dsn, rng, rows, pause=fault_scale.pick(0.1, 0.05)))
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.3, 1.0))
            await wait_for_jobs_in_hand(conn, "webhook:")
            webhook.kill()
            killed_in_hand.append(await jobs_in_hand(conn, "webhook:"))
            webhook = await harness.restart(webhook)
        ids = await load
        await settle(conn, harness, timeout=fault_scale.pick(120, 900))
        await qstash.wait_idle(timeout=60)
        failed_deliveries = sum(1 for a in qstash.attempts if not a.succeeded)

    assert sum(killed_in_hand) > 0, "no kill interrupted a batch: the scenario tested nothing"
    assert failed_deliveries > 0, "QStash never had to retry: the webhook was not down when it called"
    await assert_consistent(conn, harness)
    embedded = await conn.fetchval(
        "SELECT count(DISTINCT source_id) FROM embedq.embeddings WHERE content_type = 'post'"
    )
    assert embedded == len(ids) == rows
    assert not qstash.dead_letters, [d.attempt.status for d in qstash.dead_letters.values()]
    await record_figures(
        conn,
        "2 webhook kill -9",
        kills=kills,
        in_hand_at_kill=sum(killed_in_hand),
        qstash_retried_deliveries=failed_deliveries,
    )


async def test_a_killed_listeners_jobs_run_again_within_the_worker_timeout(
    conn, dsn, provider, make_harness, fault_scale, background, record_figures
):
    """3. kill -9 of a listener with the default lease (300 s), heartbeat and rescuer settings: the
    other listener's rescuer notices it stopped heartbeating and its jobs run again within
    EMBEDQ_WORKER_TIMEOUT (30 s), not after their lease."""
    rows = fault_scale.pick(200, 1000)
    rng = random.Random(SEED + 3)
    provider.latency = 0.5  # batches take a while, so the victim is killed holding some
    harness = make_harness(
        dsn,
        provider_url=provider.base_url,
        EMBEDQ_BATCH_SIZE="16",
        EMBEDQ_LEASE_SECONDS="300",
        EMBEDQ_RESCUE_INTERVAL="30",
        EMBEDQ_WORKER_TIMEOUT="30",
    )
    victim = await harness.listener()
    load = background(write_load(dsn, rng, rows, pause=0.05))
    await wait_for_jobs_in_hand(conn)
    survivor = await harness.listener()
    await wait_until(lambda: _holds_jobs(conn, victim), 30, interval=0.01)
    victim_names = await _names_of(conn, victim)
    victim.kill()
    held = await conn.fetch(
        "SELECT id, attempts FROM embedq.jobs WHERE status = 'processing' AND locked_by = ANY ($1::text[])",
        victim_names,
    )
    killed_at = asyncio.get_running_loop().time()

    async def running_again() -> bool:
        return not await conn.fetchval(
            "SELECT count(*) FROM embedq.jobs j JOIN unnest($1::bigint[], $2::integer[]) AS h(id, attempts) "
            "ON j.id = h.id WHERE j.attempts = h.attempts AND j.status = 'processing'",
            [r["id"] for r in held],
            [r["attempts"] for r in held],
        )

    await wait_until(running_again, 60, interval=0.1)
    recovered = asyncio.get_running_loop().time() - killed_at
    await load
    await settle(conn, harness, timeout=fault_scale.pick(120, 600))

    assert held, "the victim held no jobs when it was killed"
    assert recovered < 30, f"its jobs ran again only {recovered:.1f} s after the kill"
    await assert_consistent(conn, harness)
    assert survivor.alive
    await record_figures(
        conn,
        "3 listener kill -9, default lease 300 s",
        in_hand_at_kill=len(held),
        running_again_after_s=round(recovered, 1),
        worker_timeout_s=30,
    )


async def _names_of(conn, process) -> list[str]:
    """The names a listener process goes by (host:pid:suffix), from embedq.workers."""
    rows = await conn.fetch(
        "SELECT name FROM embedq.workers WHERE split_part(name, ':', 2) = $1", str(process.popen.pid)
    )
    return [r[0] for r in rows]


async def _holds_jobs(conn, process) -> bool:
    names = await _names_of(conn, process)
    return bool(
        names
        and await conn.fetchval(
            "SELECT count(*) FROM embedq.jobs WHERE status = 'processing' AND locked_by = ANY ($1::text[])", names
        )
    )
