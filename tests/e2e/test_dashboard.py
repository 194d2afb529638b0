"""The operator dashboard (GET /) in a real headless Chromium, against the real app, plus the
token rules of the admin routes (GET /, GET /v1/jobs, POST /v1/jobs/{id}/replay)."""

from __future__ import annotations

import dataclasses
import os
import re

import httpx
import pytest

from embedq.listener import Listener, ListenerConfig
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import serve_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "t0ken"
SCREENSHOT = "/tmp/dashboard.png"
WAIT_MS = 20_000


async def test_admin_routes_need_the_token(conn, dsn, settings):
    await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('c')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    job_id = await conn.fetchval("SELECT id FROM embedq.jobs")
    admin = dataclasses.replace(settings, admin_token=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        serve_app(create_app(admin, dsn=dsn, embedder=HashEmbedder()), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        assert (await http.get("/")).status_code == 403
        assert (await http.get("/", params={"token": "wrong"})).status_code == 403
        page = await http.get("/", params={"token": TOKEN})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "EventSource" in page.text and "http://" not in page.text and "https://" not in page.text
        assert (await http.get("/v1/jobs")).status_code == 403
        assert (await http.get("/v1/jobs", headers={"Authorization": "Bearer wrong"})).status_code == 403
        # the replay route never takes the token from the URL or a form: only the bearer header
        assert (await http.post("/v1/jobs/1/replay")).status_code in (401, 403)
        assert (await http.post("/v1/jobs/1/replay", params={"token": TOKEN})).status_code in (401, 403)
        assert (await http.post("/v1/jobs/1/replay", data={"token": TOKEN})).status_code in (401, 403)
        assert (await http.get("/v1/jobs", params={"status": "nope"}, headers=bearer)).status_code == 400
        assert (await http.get("/v1/jobs", params={"limit": "0"}, headers=bearer)).status_code == 400
        assert (await http.get("/v1/jobs", params={"limit": "501"}, headers=bearer)).status_code == 400
        listed = await http.get("/v1/jobs", params={"status": "pending", "limit": "5"}, headers=bearer)
        assert listed.status_code == 200
        assert [(j["id"], j["status"], j["content_type"]) for j in listed.json()["jobs"]] == [
            (job_id, "pending", "course")
        ]
        assert (await http.post("/v1/jobs/999999/replay", headers=bearer)).status_code == 404
        assert (await http.post(f"/v1/jobs/{job_id}/replay", headers=bearer)).status_code == 409  # pending
        await conn.execute("SELECT * FROM embedq.jobs_cancel($1)", job_id)
        replayed = await http.post(f"/v1/jobs/{job_id}/replay", headers=bearer)
        assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
        # the public routes stay public
        assert (await http.get("/v1/status")).status_code == 200
    assert await conn.fetchval("SELECT status::text FROM embedq.jobs WHERE id = $1", job_id) == "pending"

    # no token configured: the admin routes are off, and say how to turn them on
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=HashEmbedder()), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        for response in (
            await http.get("/", params={"token": TOKEN}),
            await http.get("/v1/jobs", headers=bearer),
            await http.post(f"/v1/jobs/{job_id}/replay", headers=bearer),
        ):
            assert response.status_code == 403
            assert "EMBEDQ_ADMIN_TOKEN" in response.json()["error"]


async def test_dashboard_in_a_real_browser(conn, dsn, settings):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium): the dashboard browser test needs it")
    async_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed (pip install -e .[dev])"
    )

    await conn.execute(
        "INSERT INTO embedq_sample.courses (title, description) SELECT 'course ' || g, 'learn topic ' || g "
        "FROM generate_series(1, 3) g"
    )
    await conn.execute("INSERT INTO embedq_sample.posts (title, body) VALUES ('broken post', 'will be cancelled')")
    await conn.execute("SELECT embedq.jobs_ingest()")
    dead_id = await conn.fetchval("SELECT id FROM embedq.jobs WHERE content_type = 'post'")
    await conn.execute("SELECT * FROM embedq.jobs_cancel($1)", dead_id)

    embedder = HashEmbedder()
    # read routes closed too: the page reaches them with the admin token
    admin = dataclasses.replace(settings, admin_token=TOKEN, api_token="read-only-token")
    async with (
        serve_app(create_app(admin, dsn=dsn, embedder=embedder), lifespan="on") as url,
        async_api.async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
            )
            expect = async_api.expect

            response = await page.goto(f"{url}/?token={TOKEN}")
            assert response is not None and response.status == 200
            pending = page.locator("#total-pending .value")
            await expect(pending).to_have_text("3", timeout=WAIT_MS)
            await expect(page.locator("#live")).to_have_text("connected", timeout=WAIT_MS)
            await expect(page.locator("#oldest-pending")).not_to_have_text("none pending")

            # the last hour, drawn by the page: depth by priority now, no job done yet
            depth_p2 = page.locator("#depth-chart path[data-priority='2'][data-stat='depth']")
            await expect(depth_p2).to_have_attribute("data-last", "3", timeout=WAIT_MS)
            await expect(page.locator("#depth-chart path[data-priority='4']")).to_have_attribute("data-last", "0")
            await expect(page.locator("#depth-legend")).to_have_text("P2P4")
            await expect(page.locator("#latency-chart")).to_contain_text("no job done in the last hour")

            dead_row = page.locator(f"#dead-body tr[data-job-id='{dead_id}']")
            await expect(dead_row).to_contain_text("cancelled by operator", timeout=WAIT_MS)
            await expect(dead_row).to_contain_text("post")
            await expect(page.locator("#total-dead .value")).to_have_text("1")

            # live: new rows queued while the page is open show up without a reload
            await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('course 4'), ('course 5')")
            await conn.execute("SELECT embedq.jobs_ingest()")
            await expect(pending).to_have_text("5", timeout=WAIT_MS)
            await expect(depth_p2).to_have_attribute("data-last", "5", timeout=WAIT_MS)

            # replay the dead job from its button
            await page.get_by_role("button", name=f"Replay job {dead_id}").click()
            await expect(page.locator("#replay-result")).to_have_text(
                f"Job {dead_id} is pending again.", timeout=WAIT_MS
            )
            assert await conn.fetchval("SELECT status::text FROM embedq.jobs WHERE id = $1", dead_id) == "pending"
            await expect(pending).to_have_text("6", timeout=WAIT_MS)
            await expect(page.locator("#dead-body")).to_contain_text("no dead jobs", timeout=WAIT_MS)

            # a listener drains the queue: the page follows it live, then search finds the rows
            await Listener(dsn, embedder, settings, ListenerConfig(batch_window=0.0)).run(drain=True)
            await expect(pending).to_have_text("0", timeout=WAIT_MS)
            await expect(page.locator("#total-done .value")).to_have_text("6", timeout=WAIT_MS)
            await expect(depth_p2).to_have_attribute("data-last", "0", timeout=WAIT_MS)
            for priority in ("2", "4"):  # write -> vector of the jobs just done, median and p99
                for stat in ("p50", "p99"):
                    line = page.locator(f"#latency-chart path[data-priority='{priority}'][data-stat='{stat}']")
                    await expect(line).to_have_attribute("data-last", re.compile(r"^\d+(\.\d+)?$"))
            await expect(page.locator("#latency-legend")).to_have_text("P2P4")
            await page.get_by_label("Text").fill("course 2")
            await page.get_by_role("button", name="Search").click()
            await expect(page.locator("#search-status")).to_have_text("6 results", timeout=WAIT_MS)
            await expect(page.locator("#search-body")).to_contain_text("course 2")
            await expect(page.locator("#search-body")).to_contain_text("post")

            await page.screenshot(path=SCREENSHOT, full_page=True)
            assert problems == []
        finally:
            await browser.close()
