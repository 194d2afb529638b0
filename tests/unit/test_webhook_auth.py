"""Which scopes a request gets (embedq.webhook.auth), as tables: the token rules of every route
follow from these and the `@requires` on each route."""

from __future__ import annotations

import pytest
from starlette.requests import HTTPConnection

from embedq.settings import Settings
from embedq.webhook.auth import ADMIN, READ, TokenBackend, scopes_for

API = "api-token"
ADMIN_TOKEN = "admin-token"


@pytest.mark.parametrize(
    ("api_token", "admin_token", "given", "expected"),
    [
        # no API token: reading is open to everyone; admin needs its token
        (None, None, None, {READ}),
        (None, None, "anything", {READ}),
        (None, ADMIN_TOKEN, None, {READ}),
        (None, ADMIN_TOKEN, ADMIN_TOKEN, {READ, ADMIN}),
        (None, ADMIN_TOKEN, ADMIN_TOKEN + " ", {READ}),
        # API token set: reading needs it, or the admin token
        (API, None, None, set()),
        (API, None, API, {READ}),
        (API, None, "wrong", set()),
        (API, None, API[:-1], set()),
        (API, ADMIN_TOKEN, ADMIN_TOKEN, {READ, ADMIN}),
        (API, ADMIN_TOKEN, API, {READ}),
        (API, ADMIN_TOKEN, "", set()),
        (API, ADMIN_TOKEN, "ädmin", set()),
    ],
)
def test_scopes(api_token, admin_token, given, expected):
    assert scopes_for(given, api_token=api_token, admin_token=admin_token) == expected


def connection(method: str, path: str, query: str = "", authorization: str | None = None) -> HTTPConnection:
    headers = [] if authorization is None else [(b"authorization", authorization.encode("latin-1"))]
    return HTTPConnection(
        {"type": "http", "method": method, "path": path, "query_string": query.encode(), "headers": headers}
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "authorization", "expected"),
    [
        ("GET", "/v1/jobs", "", f"Bearer {ADMIN_TOKEN}", {READ, ADMIN}),
        ("GET", "/v1/jobs", "", f"bearer   {ADMIN_TOKEN}  ", {READ, ADMIN}),
        ("GET", "/v1/status", "", f"Bearer {API}", {READ}),
        ("GET", "/v1/status", "", f"Basic {API}", set()),
        ("GET", "/v1/status", "", API, set()),
        ("GET", "/v1/status", "", "Bearer", set()),
        # ?token= only where a link or an EventSource needs it, and only on GET
        ("GET", "/", f"token={ADMIN_TOKEN}", None, {READ, ADMIN}),
        ("GET", "/v1/events", f"token={API}", None, {READ}),
        ("GET", "/v1/status", f"token={API}", None, set()),
        ("GET", "/v1/rows/course/1", f"token={API}", None, set()),
        ("GET", "/metrics", f"token={API}", None, set()),
        ("GET", "/v1/jobs", f"token={ADMIN_TOKEN}", None, set()),
        ("POST", "/v1/jobs/1/replay", f"token={ADMIN_TOKEN}", None, set()),
        ("POST", "/", f"token={ADMIN_TOKEN}", None, set()),
        # the header, when given, is the token (a right one in the query does not rescue a wrong one)
        ("GET", "/", f"token={ADMIN_TOKEN}", "Bearer wrong", set()),
    ],
)
async def test_where_tokens_are_taken(method, path, query, authorization, expected):
    backend = TokenBackend(Settings.from_env({"EMBEDQ_API_TOKEN": API, "EMBEDQ_ADMIN_TOKEN": ADMIN_TOKEN}))
    credentials, _ = await backend.authenticate(connection(method, path, query, authorization))
    assert set(credentials.scopes) == expected
