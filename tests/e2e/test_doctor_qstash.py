"""`embedq doctor` on the QStash path, over real HTTP: the QStash-compatible server, a webhook on
127.0.0.1, the real database. Healthy, then each link broken the way a user breaks it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys

import httpx

from embedq.doctor import Doctor, Verdict, passed
from embedq.settings import LOCAL_DIMENSIONS, Settings
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import free_port, serve_app
from tests.qstash_server import QStashServer


def embedder_factory(_settings):
    return HashEmbedder(dimensions=LOCAL_DIMENSIONS)


@contextlib.asynccontextmanager
async def qstash_and_webhook(settings: Settings, *, webhook_overrides: dict | None = None):
    """QStash and a webhook; yields the settings the doctor runs with (the operator's side)."""
    async with QStashServer(time_scale=0.001) as qstash:
        port = free_port()
        env = {**qstash.env, "EMBEDQ_WEBHOOK_URL": f"http://127.0.0.1:{port}/v1/jobs"}
        doctor_settings = Settings.from_env(env, database_url=settings.database_url)
        webhook_settings = dataclasses.replace(doctor_settings, **(webhook_overrides or {}))
        app = create_app(webhook_settings, embedder=embedder_factory(webhook_settings))
        async with serve_app(app, port=port, lifespan="on"):
            yield doctor_settings, qstash


def by_name(checks):
    return {c.name: c for c in checks}


async def test_a_healthy_setup_passes_every_check(settings):
    async with qstash_and_webhook(settings) as (doctor_settings, _):
        checks = await Doctor(doctor_settings, embedder_factory=embedder_factory).run()
    assert {c.name: c.verdict for c in checks} == {
        name: Verdict.OK
        for name in (
            "database",
            "pgvector",
            "migrations",
            "provider",
            "qstash token",
            "signing keys",
            "webhook",
            "round trip",
        )
    }
    assert passed(checks)
    assert "QStash ->" in by_name(checks)["round trip"].detail


async def test_a_webhook_with_other_signing_keys_is_named_with_its_fix(settings):
    wrong = {
        "qstash_current_signing_key": "sig_not_the_projects_key_but_as_long_as_one",
        "qstash_next_signing_key": None,
    }
    async with qstash_and_webhook(settings, webhook_overrides=wrong) as (doctor_settings, _):
        checks = await Doctor(doctor_settings, embedder_factory=embedder_factory).run()
    webhook = by_name(checks)["webhook"]
    assert webhook.verdict is Verdict.FAILED and "401" in webhook.detail
    assert "QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY do not match" in (webhook.fix or "")
    assert by_name(checks)["round trip"].verdict is Verdict.SKIPPED
    assert not passed(checks)


async def test_a_webhook_that_knows_another_public_url_is_named(settings):
    async with qstash_and_webhook(settings) as (doctor_settings, _):
        port = int(doctor_settings.webhook_url.split(":")[2].split("/")[0])
        other = {"webhook_url": f"http://localhost:{port}/v1/jobs"}  # the webhook's own idea of its URL
        app = create_app(dataclasses.replace(doctor_settings, **other), embedder=embedder_factory(doctor_settings))
        second = free_port()
        async with serve_app(app, port=second, lifespan="on"):
            pointed = dataclasses.replace(doctor_settings, webhook_url=f"http://127.0.0.1:{second}/v1/jobs")
            checks = await Doctor(pointed, embedder_factory=embedder_factory).run()
    webhook = by_name(checks)["webhook"]
    assert webhook.verdict is Verdict.FAILED and "(sub)" in webhook.detail
    assert "EMBEDQ_WEBHOOK_URL differs" in (webhook.fix or "")


async def test_a_rejected_token_and_a_webhook_that_is_down(settings):
    async with qstash_and_webhook(settings) as (doctor_settings, _):
        refused = dataclasses.replace(doctor_settings, qstash_token="not-the-token")
        checks = await Doctor(refused, embedder_factory=embedder_factory).run()
        token = by_name(checks)["qstash token"]
        assert token.verdict is Verdict.FAILED and "QSTASH_TOKEN" in (token.fix or "")

        down = dataclasses.replace(doctor_settings, webhook_url=f"http://127.0.0.1:{free_port()}/v1/jobs")
        checks = await Doctor(down, embedder_factory=embedder_factory).run()
    webhook = by_name(checks)["webhook"]
    assert webhook.verdict is Verdict.FAILED and "cannot be reached" in webhook.detail
    assert "embedq serve" in (webhook.fix or "")


async def test_qstash_that_cannot_reach_the_webhook_fails_the_round_trip(settings):
    async with qstash_and_webhook(settings) as (doctor_settings, qstash):
        async with httpx.AsyncClient(base_url=qstash.url) as control:
            await control.post("/_control/pause")  # QStash takes messages but delivers none
        checks = await Doctor(doctor_settings, embedder_factory=embedder_factory, round_trip_seconds=2).run()
    round_trip = by_name(checks)["round trip"]
    assert round_trip.verdict is Verdict.FAILED
    assert "did not receive it" in round_trip.detail and "reachable from QStash" in (round_trip.fix or "")


async def test_the_cli_prints_a_table_and_exits_1_naming_the_failing_check(settings):
    async with qstash_and_webhook(settings) as (doctor_settings, qstash):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
        env.update(
            qstash.env,
            DATABASE_URL=settings.database_url,
            EMBEDQ_WEBHOOK_URL=doctor_settings.webhook_url,
            QSTASH_CURRENT_SIGNING_KEY="sig_wrong",
            QSTASH_NEXT_SIGNING_KEY="sig_wrong_too",
            COLUMNS="200",
        )
        # a process of its own, while this event loop serves the webhook it calls
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "embedq",
            "doctor",
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 1, stderr.decode()
    report = json.loads(stdout)
    failed = [c for c in report["checks"] if c["verdict"] == "failed"]
    assert failed[0]["name"] == "signing keys" and "copy both signing keys" in failed[0]["fix"]
