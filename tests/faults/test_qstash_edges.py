"""QStash's edges, with real `embedq` processes and the QStash-compatible server over HTTP.

6. Start in any weather: `embedq up`, `listen` and `serve` start while QStash is unreachable,
   unavailable, rate limited or refusing the token (one warning line, local processing), and
   use QStash (schedules upserted, jobs published) once it answers.
7. Every delivery ends: with a wrong EMBEDQ_WEBHOOK_URL, wrong signing keys on the webhook, or
   no webhook at all, every job ends in bounded time, with its vectors written (a listener
   processes it after EMBEDQ_MAX_FAILED_DELIVERIES) or `dead` with the cause and the fix, after
   a bounded number of publishes; the operator sees why (logs, `embedq status`, last_error).
"""

from __future__ import annotations

import contextlib
import json
import random
from collections import Counter

import pytest

from tests.faults.harness import assert_consistent, job_counts, settle, wait_until, write_load
from tests.http_server import free_port
from tests.qstash_server import DEFAULT_CURRENT_SIGNING_KEY, DEFAULT_NEXT_SIGNING_KEY, DEFAULT_TOKEN, QStashServer

SEED = 20261125
SCHEDULE_IDS = ["embedq-maintenance-daily", "embedq-retry-failed-weekly"]


def qstash_env(qstash_port: int) -> dict[str, str]:
    return {
        "QSTASH_URL": f"http://127.0.0.1:{qstash_port}",
        "QSTASH_TOKEN": DEFAULT_TOKEN,
        "QSTASH_CURRENT_SIGNING_KEY": DEFAULT_CURRENT_SIGNING_KEY,
        "QSTASH_NEXT_SIGNING_KEY": DEFAULT_NEXT_SIGNING_KEY,
    }


@contextlib.asynccontextmanager
async def weather(kind: str, port: int):
    """QStash on `port` as it is at start: not there, answering 503, over quota, or another
    account's; yields a function that makes it answer, and returns the server that then does."""
    async with contextlib.AsyncExitStack() as stack:
        server: QStashServer | None = None
        if kind != "unreachable":
            token = "another-account" if kind == "token rejected" else DEFAULT_TOKEN
            server = await stack.enter_async_context(QStashServer(port=port, token=token, time_scale=0.001))
            server.set_outage(kind == "unavailable")
            server.set_quota_exceeded("daily" if kind == "rate limited" else None)

        async def answer() -> QStashServer:
            nonlocal server
            if kind in ("unavailable", "rate limited"):
                assert server is not None
                server.set_outage(False)
                server.set_quota_exceeded(None)
                return server
            await stack.aclose()  # the other account's server goes; ours takes its port
            server = await stack.enter_async_context(QStashServer(port=port, time_scale=0.001))
            return server

        yield answer


def qstash_warnings(process) -> list[str]:
    return [e["message"] for e in process.log_events(level="warning") if "QStash" in json.dumps(e)]


@pytest.mark.parametrize("kind", ["unreachable", "unavailable", "rate limited", "token rejected"])
async def test_up_listen_and_serve_start_in_any_weather_then_use_qstash_once_it_answers(
    conn, dsn, provider, make_harness, record_figures, kind
):
    qstash_port, up_port, serve_port = free_port(), free_port(), free_port()
    rng = random.Random(SEED)
    harness = make_harness(
        dsn,
        provider_url=provider.base_url,
        **qstash_env(qstash_port),
        EMBEDQ_WEBHOOK_URL=f"http://127.0.0.1:{up_port}/v1/jobs",
        EMBEDQ_QSTASH_RETRIES="2",
    )
    async with weather(kind, qstash_port) as answer:
        up = await harness.up(up_port)
        listener = await harness.listener()
        serve = await harness.webhook(serve_port, EMBEDQ_WEBHOOK_URL=f"http://127.0.0.1:{up_port}/v1/jobs")
        before = await write_load(dsn, rng, 30)
        await settle(conn, harness, timeout=60)
        harness.assert_running()
        assert await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE message_id IS NOT NULL") == 0
        # at most one warning line each (none by `serve`, which does not talk to QStash): the
        # cause, and that jobs are processed here meanwhile; with a rate limit, by whichever
        # listener published first
        said = {p.name: qstash_warnings(p) for p in (up, listener)}
        assert all(len(lines) <= 1 for lines in said.values()), said
        assert sum(len(lines) for lines in said.values()) >= (1 if kind == "rate limited" else 2), said
        assert all("processing" in line and "here" in line for lines in said.values() for line in lines), said
        assert not serve.log_events(level="warning") and not serve.log_events(level="error")
        for process in (up, listener, serve):
            assert "Traceback" not in process.log_text()

        qstash = await answer()  # QStash answers now

        async def schedules_upserted() -> bool:
            return sorted(qstash.schedules) == SCHEDULE_IDS

        await wait_until(schedules_upserted, 30)

        async def published_again() -> bool:
            await write_load(dsn, rng, 1)
            return bool(
                await conn.fetchval("SELECT count(*) FROM embedq.jobs WHERE message_id IS NOT NULL AND status = 'done'")
            )

        back = await wait_until(published_again, 60, interval=1.0)
        await settle(conn, harness, timeout=60)
        await qstash.wait_idle(timeout=30)
    await assert_consistent(conn, harness)
    assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") > len(before)
    await record_figures(conn, f"6 start while QStash {kind}", back_on_qstash_s=round(back, 1))


# -- every delivery ends ------------------------------------------------------------------------

#: (what is wrong, how the jobs end, words the reason must say)
BROKEN_DELIVERIES = [
    ("wrong webhook URL", "vectors", ["answered 404", "EMBEDQ_WEBHOOK_URL does not point at embedq"]),
    ("wrong signing keys", "vectors", ["answered 401", "QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY"]),
    ("webhook down", "vectors", ["could not reach", "is `embedq serve`"]),
    ("wrong signing keys", "dead", ["answered 401", "QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY"]),
]


@pytest.mark.parametrize(
    ("broken", "ending", "reason_says"), BROKEN_DELIVERIES, ids=[f"{b}-{e}" for b, e, _ in BROKEN_DELIVERIES]
)
async def test_every_delivery_ends_with_vectors_or_dead_jobs_after_a_bounded_number_of_publishes(
    conn, dsn, provider, make_harness, fault_scale, record_figures, broken, ending, reason_says
):
    rows = fault_scale.pick(60, 600)
    max_failed_deliveries = 2
    webhook_port = free_port()
    jobs_url = f"http://127.0.0.1:{webhook_port}/v1/jobs"
    async with QStashServer(time_scale=0.001) as qstash:
        env = {
            **qstash.env,
            "EMBEDQ_WEBHOOK_URL": jobs_url,
            "EMBEDQ_QSTASH_RETRIES": "1",
            "EMBEDQ_JOBS_PER_MESSAGE": "10",
            "EMBEDQ_MAX_FAILED_DELIVERIES": str(max_failed_deliveries),
        }
        if ending == "dead":  # out of attempts before a listener would take them over
            env |= {"EMBEDQ_MAX_ATTEMPTS": str(max_failed_deliveries)}
        harness = make_harness(dsn, provider_url=provider.base_url, **env)
        if broken == "wrong webhook URL":
            await harness.webhook(webhook_port)
            jobs_url = f"http://127.0.0.1:{webhook_port}/embedq/v1/jobs"  # what the listener is told
            listener = await harness.listener(EMBEDQ_WEBHOOK_URL=jobs_url)
        elif broken == "wrong signing keys":
            await harness.webhook(
                webhook_port,
                QSTASH_CURRENT_SIGNING_KEY="sig_from_another_account_1",
                QSTASH_NEXT_SIGNING_KEY="sig_from_another_account_2",
            )
            listener = await harness.listener()
        else:
            listener = await harness.listener()
        ids = await write_load(dsn, random.Random(SEED + 1), rows)
        seconds = await settle(conn, harness, timeout=fault_scale.pick(90, 600))

        async def dead_letters_handled() -> bool:
            return not qstash.dead_letters  # each read, taken care of and deleted by the listener

        await wait_until(dead_letters_handled, 30)
        publishes = Counter(
            job["id"]
            for message in qstash.messages.values()
            if message.url == jobs_url
            for job in json.loads(message.body)["jobs"]
        )

    # a bounded number of publishes per job, each ending in a failed delivery
    assert max(publishes.values()) <= max_failed_deliveries, publishes.most_common(3)
    assert len(publishes) == await conn.fetchval("SELECT count(*) FROM embedq.jobs")
    counts = await job_counts(conn)
    if ending == "vectors":
        await assert_consistent(conn, harness)
        assert await conn.fetchval("SELECT count(DISTINCT source_id) FROM embedq.embeddings") == len(ids)
        assert counts.get("done") == len(publishes)
        assert await conn.fetchval("SELECT min(failed_deliveries) FROM embedq.jobs") == max_failed_deliveries
        assert listener.log_events("undeliverable"), "the listener never said it took the jobs over"
    else:
        assert counts.get("dead") == len(publishes) and not counts.get("done"), counts
        dead = await conn.fetch("SELECT cause::text, last_error FROM embedq.jobs")
        assert {r["cause"] for r in dead} == {"delivery"}  # the weekly retry will try them again
        for words in reason_says:
            assert all(words in r["last_error"] for r in dead), dead[0]["last_error"]
        assert await conn.fetchval("SELECT count(*) FROM embedq.embeddings") == 0
    # what the operator sees: the log, and `embedq status`
    reasons = [e["reason"] for e in listener.log_events("undelivered")]
    assert reasons and all(all(words in r for words in reason_says) for r in reasons), reasons[:1]
    status = json.loads((await harness.cli("status", "--json")).stdout)
    [problem] = [w["problem"] for w in status["workers"]]
    assert all(words in problem for words in reason_says), problem
    await record_figures(
        conn,
        f"7 {broken}: {ending}",
        seconds_to_end=round(seconds, 1),
        max_publishes_per_job=max(publishes.values()),
        messages=len(qstash.messages),
    )
