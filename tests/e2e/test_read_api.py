"""The read API over real HTTP: a row's embedding state (GET /v1/rows/...), and who may read
once EMBEDQ_API_TOKEN is set."""

from __future__ import annotations

import dataclasses

import httpx

from embedq.listener import Listener, ListenerConfig
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import serve_app

API_TOKEN = "read-token"
ADMIN_TOKEN = "admin-token"


async def test_a_row_state_follows_its_jobs(conn, dsn, settings):
    embedder = HashEmbedder()
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):

        async def state(content_type: str, source_id: str) -> dict:
            response = await http.get(f"/v1/rows/{content_type}/{source_id}")
            assert response.status_code == 200, response.text
            return response.json()

        assert (await state("course", "1"))["state"] == "missing"
        await conn.execute("INSERT INTO embedq_sample.courses (title) VALUES ('bread baking')")
        assert (await state("course", "1"))["state"] == "queued"  # still in the inbox
        await Listener(dsn, embedder, settings, ListenerConfig(batch_window=0.0)).run(drain=True)
        current = await state("course", "1")
        assert (current["state"], current["job_status"], current["chunks"]) == ("current", "done", 1)
        assert current["embedded_at"] is not None and current["job_id"] is not None

        await conn.execute("UPDATE embedq_sample.courses SET title = 'sourdough' WHERE id = 1")
        await conn.execute("SELECT embedq.jobs_ingest()")
        await conn.execute("SELECT embedq.jobs_cancel(id) FROM embedq.jobs WHERE status = 'pending'")
        dead = await state("course", "1")
        assert (dead["state"], dead["last_error"]) == ("dead", "cancelled by operator")
        assert dead["job_id"] > current["job_id"]

        # keys are text: anything after the type is the key, slashes included
        assert (await state("course", "a/b c"))["source_id"] == "a/b c"
        unknown = await http.get("/v1/rows/nope/1")
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]


async def test_read_routes_need_the_api_token_once_it_is_set(conn, dsn, settings):
    closed = dataclasses.replace(settings, api_token=API_TOKEN, admin_token=ADMIN_TOKEN)
    reads = ("/v1/status", "/v1/search?q=bread", "/v1/rows/course/1", "/metrics")
    async with (
        serve_app(create_app(closed, dsn=dsn, embedder=HashEmbedder()), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        for route in reads:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_TOKEN}"}):
                refused = await http.get(route, headers=headers)
                assert refused.status_code == 401, (route, headers)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert "EMBEDQ_API_TOKEN" in refused.json()["error"]
            # the token in the URL is taken only where a browser cannot send a header
            separator = "&" if "?" in route else "?"
            assert (await http.get(f"{route}{separator}token={API_TOKEN}")).status_code == 401, route
            for token in (API_TOKEN, ADMIN_TOKEN):
                assert (await http.get(route, headers={"Authorization": f"Bearer {token}"})).status_code == 200
        for query, expected in ((f"?token={API_TOKEN}", 200), (f"?token={ADMIN_TOKEN}", 200), ("?token=x", 401)):
            async with http.stream("GET", f"/v1/events{query}") as stream:
                assert stream.status_code == expected, query
        # the read token opens no admin route
        assert (await http.get("/v1/jobs", headers={"Authorization": f"Bearer {API_TOKEN}"})).status_code == 403
        assert (await http.get("/healthz")).status_code == 200


async def test_search_over_http_takes_the_options_of_the_cli_and_the_python_api(conn, dsn, settings):
    embedder = HashEmbedder()
    await conn.execute(
        "SELECT embedq.register_source('course', 'embedq_sample.courses', ARRAY['title', 'description'], 2, "
        "filters => ARRAY['category'])"
    )
    await conn.execute(
        "INSERT INTO embedq_sample.courses (title, description, category) VALUES "
        "('Knife skills CK-1203', 'Dice an onion safely.', 'cooking'), "
        "('Query plans', 'Read EXPLAIN output.', 'databases'), "
        "('Sourdough', 'Feed the starter.', 'cooking')"
    )
    await Listener(dsn, embedder, settings, ListenerConfig(batch_window=0.0)).run(drain=True)
    async with (
        serve_app(create_app(settings, dsn=dsn, embedder=embedder), lifespan="on") as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        cooking = (await http.get("/v1/search", params={"q": "onion", "filter": "category=cooking"})).json()
        assert {hit["source_id"] for hit in cooking["results"]} == {"1", "3"}
        hybrid = (await http.get("/v1/search", params={"q": "CK-1203", "hybrid": "1", "k": "1"})).json()
        assert [hit["source_id"] for hit in hybrid["results"]] == ["1"]  # the exact code, found by keywords
        paged = (await http.get("/v1/search", params={"q": "onion", "offset": "2"})).json()
        assert len(paged["results"]) == 1
        nothing = (await http.get("/v1/search", params={"q": "onion", "min_score": "1"})).json()
        assert nothing["results"] == []
        bad = await http.get("/v1/search", params={"q": "onion", "filter": "category"})
        assert bad.status_code == 400 and "KEY=VALUE" in bad.json()["error"]
    logged = await conn.fetch("SELECT origin, query FROM embedq.search_log ORDER BY id")
    assert [r["origin"] for r in logged] == ["http"] * 4
