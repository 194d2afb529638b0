"""Scenario 7: hostile input at every door.

- The webhook, over real HTTP, fed malformed bodies, headers and signatures (hypothesis): never a
  5xx, never a database write without a valid signature; a valid signature over a malformed body
  is a 4xx. The admin routes with wrong tokens: 403, nothing changes.
- `embedq.register_source` with hostile identifiers: a clear error, or exactly the table meant is
  registered; nothing else in the catalog is created or dropped.
- The CLI fed garbage: exit code 2, one line on stderr, never a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
import traceback
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, assume, given, settings as hypothesis_settings, strategies as st
from psycopg import sql

from embedq.settings import Settings
from embedq.testing import HashEmbedder
from tests.http_server import free_port, serve_app
from tests.qstash_server import claims, encode, sign
from webhook.app import create_app

# Keys as long as QStash's (32 characters): PyJWT warns about shorter HMAC keys.
CURRENT_KEY = "sig_HostileCurrentKey0000000000a"
NEXT_KEY = "sig_HostileNextKey00000000000000b"
ADMIN_TOKEN = "admin-token-for-hostile-input-0123456789"
MAX_BODY_BYTES = 64 * 1024
SIGNED_ROUTES = ("/v1/jobs", "/v1/failures", "/v1/maintenance")
LARGEST_BIGINT = 2**63 - 1
SEEDED_MESSAGE_ID = "msg_seeded_for_hostile_input"


def hypothesis_run(fault_scale, short: int = 80, long: int = 2000):
    return hypothesis_settings(
        max_examples=fault_scale.pick(short, long),
        deadline=None,
        database=None,  # nothing written into the working tree; failures print their example
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# -- the webhook, served for real --------------------------------------------------------------


class ServerErrors(logging.Filter):
    """The app's unhandled exceptions, one line each, kept for assertion messages.

    The traceback is not formatted: Python 3.11's traceback formatting calls ast.parse, and done
    in the server's thread while pytest parses source for a failure report it can make CPython
    3.11.7 raise "AST constructor recursion depth mismatch" (module-global state), which pytest
    turns into an INTERNALERROR that ends the session."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            where = traceback.extract_tb(error.__traceback__)[-1]
            line = f"{type(error).__name__}: {error} (at {where.filename}:{where.lineno} in {where.name})"
            self.seen.append(line)
            record.msg, record.args = f"{record.getMessage()}: {line}", ()
            record.exc_info = record.exc_text = None
        return True


@dataclasses.dataclass
class Webhook:
    base_url: str
    http: httpx.Client
    dsn: str
    dead_job_id: int
    dispatched_ids: list[int]
    errors: ServerErrors
    _errors_before: int = 0

    def url(self, route: str) -> str:
        return f"{self.base_url}{route}"

    def post(self, route: str, body: bytes, headers: dict[str, bytes], *, chunked: bool = False) -> httpx.Response:
        content = iter([body]) if chunked else body
        return self.call("POST", route, content=content, headers=headers)

    def call(self, method: str, route: str, **kwargs) -> httpx.Response:
        self._errors_before = len(self.errors.seen)
        return self.http.request(method, route, **kwargs)

    def explain(self, response: httpx.Response) -> tuple:
        """Status, body and, for a 5xx, the server's exception (logged just after the answer)."""
        if response.status_code >= 500:
            deadline = time.monotonic() + 2
            while len(self.errors.seen) <= self._errors_before and time.monotonic() < deadline:
                time.sleep(0.01)
        return response.status_code, response.text[:300], self.errors.seen[self._errors_before:]


def seed_jobs(dsn: str) -> tuple[int, list[int]]:
    """Jobs in every interesting state, so a forged request that got through would change something:
    three dispatched under a known QStash message id, one dead (replayable), pending ones, and an
    application write still waiting in the inbox."""
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("INSERT INTO courses (title) SELECT 'hostile ' || g FROM generate_series(1, 6) g")
        db.execute("SELECT embedq.jobs_ingest()")
        dispatched = [r[0] for r in db.execute(
            "SELECT id FROM embedq.jobs_claim('seed', 3, '1 hour', NULL, 'dispatched')")]
        db.execute("SELECT embedq.jobs_set_message(%s::bigint[], %s)", (dispatched, SEEDED_MESSAGE_ID))
        dead = db.execute(
            "UPDATE embedq.jobs SET status = 'dead', finished_at = now(), last_error = 'seeded' "
            "WHERE id = (SELECT min(id) FROM embedq.jobs WHERE status = 'pending') RETURNING id").fetchone()[0]
        db.execute("INSERT INTO posts (title, body) VALUES ('waiting in the inbox', 'x')")
    return dead, dispatched


SNAPSHOT = """
SELECT (SELECT count(*) || ':' || coalesce(md5(string_agg(j::text, '|' ORDER BY j.id)), '') FROM embedq.jobs j),
       (SELECT count(*) || ':' || coalesce(md5(string_agg(e::text, '|' ORDER BY e.content_type, e.source_id, e.model,
                                                          e.chunk_index)), '') FROM embedq.embeddings e),
       (SELECT count(*) || ':' || coalesce(md5(string_agg(i::text, '|' ORDER BY i.id)), '') FROM embedq.job_inbox i),
       (SELECT count(*) || ':' || coalesce(md5(string_agg(s::text, '|' ORDER BY s.content_type)), '')
        FROM embedq.sources s)
"""


def database_state(db: psycopg.Connection) -> tuple:
    """Counts and checksums of the jobs, vectors, inbox and registrations."""
    return tuple(db.execute(SNAPSHOT).fetchone())


@contextlib.contextmanager
def running_webhook(dsn: str) -> Iterator[Webhook]:
    """The real app on uvicorn (lifespan on) in a background event loop; a sync client to call it,
    so hypothesis can drive it from a plain test function."""
    dead, dispatched = seed_jobs(dsn)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "QSTASH_CURRENT_SIGNING_KEY": CURRENT_KEY,
        "QSTASH_NEXT_SIGNING_KEY": NEXT_KEY,
        "EMBEDQ_WEBHOOK_URL": f"{base}/v1/jobs",
        "EMBEDQ_ADMIN_TOKEN": ADMIN_TOKEN,
        "EMBEDQ_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    app = create_app(Settings.from_env(env, database_url=dsn), embedder=HashEmbedder())
    errors = ServerErrors()
    server_log = logging.getLogger("uvicorn.error")
    server_log.addFilter(errors)
    try:
        with (start_blocking_portal() as portal,
              portal.wrap_async_context_manager(serve_app(app, port=port, lifespan="on")),
              httpx.Client(base_url=base, timeout=30) as http):
            yield Webhook(base, http, dsn, dead, dispatched, errors)
    finally:
        server_log.removeFilter(errors)


@pytest.fixture
def webhook(dsn) -> Iterator[Webhook]:
    with running_webhook(dsn) as served:
        yield served


@pytest.fixture
def db(dsn) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


# -- strategies: bodies --------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**62, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "\x00", "\ud800", "msg_" + "x" * 100, SEEDED_MESSAGE_ID, "1", "-1", "1e3"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def dumps(value) -> bytes:
    # allow_nan: NaN and Infinity are what a hostile client would send; json.loads accepts them
    return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")


job_items = st.one_of(
    st.fixed_dictionaries({"id": json_scalars}),
    st.fixed_dictionaries({"id": st.integers(min_value=-5, max_value=12)}),
    st.fixed_dictionaries({"id": st.integers(min_value=LARGEST_BIGINT - 2, max_value=LARGEST_BIGINT + 2)}),
    st.fixed_dictionaries({"id": st.integers(min_value=1, max_value=12),
                           "content_type": json_values, "source_id": json_values, "op": json_values}),
    json_values,
)
jobs_bodies = st.one_of(
    st.lists(job_items, max_size=6).map(lambda jobs: dumps({"jobs": jobs})),
    st.dictionaries(st.sampled_from(["jobs", "Jobs", "job", ""]), json_values, max_size=2).map(dumps),
    st.integers(min_value=0, max_value=3).map(lambda n: b'{"jobs": [' + b'{"id": 1},' * (10_000 + n) + b'{"id": 2}]}'),
)
failure_bodies = st.builds(
    lambda message_id, body, extra: dumps({"sourceMessageId": message_id, "body": body, **extra}),
    json_scalars,
    st.one_of(json_scalars, st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())),
    st.dictionaries(st.sampled_from(["status", "retried", "maxRetries", "url", "header"]), json_values, max_size=3),
)
maintenance_bodies = st.one_of(
    st.fixed_dictionaries({"task": json_values}).map(dumps),
    st.sampled_from([b"", b"{}", b'{"task": "maintenance"}', b'{"task": "retry_failed"}', b"null", b"[]"]),
)
any_bodies = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(dumps),
    jobs_bodies, failure_bodies, maintenance_bodies,
    st.integers(min_value=MAX_BODY_BYTES - 2, max_value=MAX_BODY_BYTES + 50_000).map(lambda n: b"x" * n),
)


def well_formed(route: str, body: bytes) -> bool:
    """What each route accepts, straight from the contract; everything else is malformed (400/413)."""
    if len(body) > MAX_BODY_BYTES:
        return False
    try:
        payload = json.loads(body or b"{}" if route == "/v1/maintenance" else body)
    except (UnicodeDecodeError, ValueError):
        return False
    if route == "/v1/maintenance":
        return isinstance(payload, dict) and payload.get("task", "maintenance") in ("maintenance", "retry_failed")
    if not isinstance(payload, dict):
        return False
    if route == "/v1/jobs":
        jobs = payload.get("jobs")
        return (isinstance(jobs, list) and 1 <= len(jobs) <= 10_000
                and all(isinstance(j, dict) and type(j.get("id")) is int and 1 <= j["id"] <= LARGEST_BIGINT
                        for j in jobs))
    message_id, answer = payload.get("sourceMessageId"), payload.get("body")
    if not isinstance(message_id, str) or not message_id or not postgres_text(message_id):
        return False
    if answer not in (None, "") and not isinstance(answer, str):
        return False
    return True


def postgres_text(value: str) -> bool:
    """PostgreSQL text holds any UTF-8 except NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


# -- strategies: signatures ----------------------------------------------------------------------

FORGERIES = (
    "missing", "empty", "garbage", "three segments", "wrong key", "wrong body", "expired", "not yet valid",
    "issued in the future", "wrong iss", "wrong sub", "another route", "alg none", "other alg", "missing claim",
    "claim of the wrong type", "huge", "prefixed", "truncated", "tampered payload",
)


# Values that make each claim wrong (a far-future `exp` or a past `iat` would still be valid).
INVALID_CLAIM_VALUES = {
    "iss": [None, [], {}, ["Upstash"], 1, "upstash", "Upstash\x00", ""],
    "sub": [None, [], {}, 1, True, ""],
    "exp": [None, [], {}, float("inf"), float("-inf"), float("nan"), True, 0, -(10**40), "soon", "", "1e99"],
    "nbf": [None, [], {}, float("inf"), float("nan"), 10**40, "soon", "1e99"],
    "iat": [None, [], {}, float("inf"), float("-inf"), float("nan"), 10**40, "soon", "1e99"],
    "body": [None, [], {}, 123, True, "", "=", "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"],
}


def forged_signature(data: st.DataObject, webhook_url: str, route: str, body: bytes) -> bytes | None:
    """An Upstash-Signature that must be refused: absent, garbage, or a JWT that is almost right."""
    url = f"{webhook_url}{route}"
    kind = data.draw(st.sampled_from(FORGERIES), label="forgery")
    now = time.time()
    token: str | None
    if kind == "missing":
        return None
    if kind == "empty":
        return b""
    if kind == "garbage":
        return data.draw(st.binary(min_size=1, max_size=200).map(header_safe), label="garbage")
    if kind == "three segments":
        parts = data.draw(st.lists(st.binary(max_size=60), min_size=3, max_size=3), label="segments")
        return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts).encode()
    payload = claims(url, body)
    key, algorithm = CURRENT_KEY, "HS256"
    if kind == "wrong key":
        key = data.draw(st.sampled_from([
            "sig_forged_key_00000000000000000", CURRENT_KEY[:-1] + "b", CURRENT_KEY.lower(), NEXT_KEY + " ",
            "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"]), label="key")  # the dev server's public key
    elif kind == "wrong body":
        other = data.draw(st.binary(max_size=60).filter(lambda b: b != body), label="other body")
        payload["body"] = claims(url, other)["body"]
    elif kind == "expired":
        ago = data.draw(st.integers(min_value=400, max_value=10**9), label="seconds ago")
        payload = claims(url, body, now=now - ago)
    elif kind == "not yet valid":
        payload["nbf"] = int(now) + data.draw(st.integers(min_value=120, max_value=10**9), label="nbf ahead")
    elif kind == "issued in the future":
        ahead = data.draw(st.integers(min_value=120, max_value=10**9), label="iat ahead")
        payload = claims(url, body, now=now + ahead)
    elif kind == "wrong iss":
        payload["iss"] = data.draw(st.one_of(st.text(max_size=10), st.sampled_from(["upstash", "Upstash ", "UPSTASH"]))
                                   .filter(lambda s: s != "Upstash"), label="iss")
    elif kind == "wrong sub":
        payload["sub"] = data.draw(st.one_of(
            st.sampled_from([url + "/", url.replace("http://", "https://"), url.replace("127.0.0.1", "localhost"),
                             url + "?x=1", url.upper(), "http://attacker.example/v1/jobs", ""]),
            st.text(max_size=40)).filter(lambda s: s != url), label="sub")
    elif kind == "another route":
        payload = claims(f"{webhook_url}{data.draw(st.sampled_from([r for r in SIGNED_ROUTES if r != route]))}", body)
    elif kind == "alg none":
        algorithm = data.draw(st.sampled_from(["none", "None", "NONE", "nOnE"]), label="alg")
    elif kind == "other alg":
        algorithm = data.draw(st.sampled_from(["HS384", "HS512"]), label="alg")
    elif kind == "missing claim":
        payload.pop(data.draw(st.sampled_from(["iss", "sub", "exp", "nbf", "iat", "body"]), label="dropped"))
    elif kind == "claim of the wrong type":
        name = data.draw(st.sampled_from(sorted(INVALID_CLAIM_VALUES)), label="claim")
        payload[name] = data.draw(st.sampled_from(INVALID_CLAIM_VALUES[name]), label="value")
    if algorithm.lower() == "none":
        header = {"alg": algorithm, "typ": "JWT"}
        token = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
                         for part in (header, payload)) + "."
    else:
        token = encode(payload, key, algorithm)
    if kind == "huge":
        token = encode({**payload, "pad": "x" * data.draw(st.integers(1_000, 40_000), label="padding")},
                       "sig_forged_key_00000000000000000")
    elif kind == "prefixed":
        token = (data.draw(st.sampled_from(["Bearer ", "bearer ", "v1,", "x", '"']), label="prefix") + token
                 + data.draw(st.sampled_from(["", ".", "x", ".x", '"']), label="suffix"))
    elif kind == "truncated":
        token = token[: data.draw(st.integers(1, len(token) - 1), label="length")]
    elif kind == "tampered payload":
        head, _, mac = token.split(".")
        tampered = dict(claims(url, body), admin=True)
        token = ".".join([head, base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode(), mac])
    return token.encode("latin-1", "replace")


def header_safe(raw: bytes) -> bytes:
    """A header value h11 will send: no control characters, no leading or trailing whitespace."""
    cleaned = bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip()
    return cleaned or b"x"


content_types = st.sampled_from([
    b"application/json", b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
    b"application/json; charset=utf-16", b"", b"\xff\xfe", b"application/json" + b";" * 100])


def extra_headers(data: st.DataObject) -> dict[str, bytes]:
    headers = {"content-type": data.draw(content_types, label="content-type")}
    if data.draw(st.booleans(), label="message id"):
        headers["upstash-message-id"] = data.draw(st.binary(min_size=1, max_size=80).map(header_safe))
    if data.draw(st.booleans(), label="retried"):
        headers["upstash-retried"] = data.draw(st.sampled_from([b"0", b"-1", b"abc", b"99999999999999999999"]))
    return headers


# -- (a) the webhook ----------------------------------------------------------------------------


def test_forged_deliveries_are_refused_without_touching_the_database(webhook, db, fault_scale):
    before = database_state(db)

    @hypothesis_run(fault_scale)
    @given(route=st.sampled_from(SIGNED_ROUTES), body=any_bodies, chunked=st.booleans(), data=st.data())
    def forged_delivery(route, body, chunked, data):
        headers = extra_headers(data)
        signature = forged_signature(data, webhook.base_url, route, body)
        if signature is not None:
            headers["upstash-signature"] = signature
        response = webhook.post(route, body, headers, chunked=chunked)
        assert response.status_code < 500, webhook.explain(response)
        if len(body) > MAX_BODY_BYTES:
            assert response.status_code == 413, response.text
        elif signature is not None and len(signature) > 15_000:
            assert 400 <= response.status_code < 500, response.text  # refused before or at the verifier
        else:
            assert response.status_code == 401, response.text
        assert database_state(db) == before, "a request without a valid signature changed the database"

    forged_delivery()


@pytest.mark.parametrize("route", SIGNED_ROUTES)
def test_a_valid_delivery_for_each_route_still_gets_in(webhook, db, route):
    """The control for the test above: the same server accepts a genuine signature."""
    body = {"/v1/jobs": json.dumps({"jobs": [{"id": i} for i in webhook.dispatched_ids]}).encode(),
            "/v1/failures": json.dumps({"sourceMessageId": "msg_unknown", "status": 500, "retried": 3}).encode(),
            "/v1/maintenance": b'{"task": "maintenance"}'}[route]
    response = webhook.post(route, body, {"upstash-signature": sign(CURRENT_KEY, webhook.url(route), body).encode(),
                                          "content-type": b"application/json"})
    assert response.status_code == 200, response.text
    if route == "/v1/jobs":
        assert db.execute("SELECT count(*) FROM embedq.embeddings").fetchone()[0] == len(webhook.dispatched_ids)


def test_validly_signed_malformed_bodies_get_a_4xx(webhook, db, fault_scale):
    before = database_state(db)

    @hypothesis_run(fault_scale)
    @given(route=st.sampled_from(SIGNED_ROUTES), data=st.data())
    def signed_malformed(route, data):
        body = data.draw({"/v1/jobs": st.one_of(jobs_bodies, st.binary(max_size=100), json_values.map(dumps)),
                          "/v1/failures": st.one_of(failure_bodies, st.binary(max_size=100), json_values.map(dumps)),
                          "/v1/maintenance": st.one_of(maintenance_bodies, st.binary(max_size=100),
                                                       json_values.map(dumps))}[route], label="body")
        assume(not well_formed(route, body))
        signature = sign(data.draw(st.sampled_from([CURRENT_KEY, NEXT_KEY]), label="key"), webhook.url(route), body)
        response = webhook.post(route, body, {**extra_headers(data), "upstash-signature": signature.encode()})
        assert 400 <= response.status_code < 500, (body[:200], webhook.explain(response))
        assert database_state(db) == before, "a request answered 4xx changed the database"

    signed_malformed()


MALFORMED_BUT_SIGNED = {
    "job id beyond bigint": ("/v1/jobs", b'{"jobs": [{"id": 9223372036854775808}]}'),
    "job id far beyond bigint": ("/v1/jobs", b'{"jobs": [{"id": 1}, {"id": 100000000000000000000000000}]}'),
    "callback body is a number": ("/v1/failures", b'{"sourceMessageId": "msg_unknown", "body": 5}'),
    "callback body is a list": ("/v1/failures", b'{"sourceMessageId": "msg_unknown", "body": ["a"]}'),
    "message id with NUL": ("/v1/failures", b'{"sourceMessageId": "msg_\\u0000x"}'),
    "message id with a lone surrogate": ("/v1/failures", b'{"sourceMessageId": "msg_\\ud800"}'),
    "jobs not a list": ("/v1/jobs", b'{"jobs": {"id": 1}}'),
    "maintenance task unknown": ("/v1/maintenance", b'{"task": "drop_everything"}'),
    "not UTF-8": ("/v1/jobs", b"\xff\xfe\x00"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BUT_SIGNED))
def test_malformed_but_signed_examples(webhook, db, case):
    """The malformed bodies hypothesis tends to find, by name: each a 400, nothing written."""
    route, body = MALFORMED_BUT_SIGNED[case]
    before = database_state(db)
    response = webhook.post(route, body, {"upstash-signature": sign(CURRENT_KEY, webhook.url(route), body).encode(),
                                          "content-type": b"application/json"})
    assert response.status_code == 400, webhook.explain(response)
    assert database_state(db) == before


def test_a_failure_callback_whose_answer_holds_NUL_bytes_is_not_a_5xx(webhook, db):
    """A genuine callback: the endpoint's last answer (base64 in `body`) had NUL bytes in it, as a
    proxy's binary error page may. The jobs of the message still end dead, with a readable reason."""
    body = json.dumps({"sourceMessageId": SEEDED_MESSAGE_ID, "status": 502, "retried": 3,
                       "body": base64.b64encode(b"bad gateway\x00\x00\xff").decode()}).encode()
    response = webhook.post("/v1/failures", body, {
        "upstash-signature": sign(CURRENT_KEY, webhook.url("/v1/failures"), body).encode()})
    assert response.status_code == 200, webhook.explain(response)
    rows = db.execute("SELECT status::text, last_error FROM embedq.jobs WHERE message_id = %s",
                      (SEEDED_MESSAGE_ID,)).fetchall()
    assert rows and all(status == "dead" and "bad gateway" in error for status, error in rows)


BAD_ADMIN_TOKENS = st.one_of(
    st.text(max_size=60),
    st.sampled_from([ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x", ADMIN_TOKEN.upper(), ADMIN_TOKEN[1:], ADMIN_TOKEN * 2,
                     CURRENT_KEY, "null", "undefined", "' OR '1'='1", ADMIN_TOKEN.replace("0", "O")]),
).filter(lambda t: t.strip() != ADMIN_TOKEN)


def authorization_headers(data: st.DataObject) -> dict[str, bytes]:
    token = data.draw(BAD_ADMIN_TOKENS, label="token")
    style = data.draw(st.sampled_from(["bearer", "basic", "bare", "none", "query only", "scheme only"]), label="style")
    encoded = token.encode("utf-8")
    value = {"bearer": b"Bearer " + encoded, "basic": b"Basic " + base64.b64encode(b"admin:" + encoded),
             "bare": encoded, "scheme only": b"Bearer", "none": None, "query only": None}[style]
    headers = {}
    if value is not None:
        headers["authorization"] = header_safe(value) if value.strip() else b"Bearer"
        if b"Bearer " + ADMIN_TOKEN.encode() == headers["authorization"].strip():
            headers["authorization"] = b"Bearer wrong"
    return headers


def test_admin_routes_refuse_wrong_tokens_and_change_nothing(webhook, db, fault_scale):
    before = database_state(db)
    job_ids = st.one_of(st.just(webhook.dead_job_id), st.integers(min_value=0, max_value=2**70).map(str),
                        st.sampled_from(["-1", "abc", "1.5", "%00", "..", "1;DROP TABLE embedq.jobs"]))

    @hypothesis_run(fault_scale)
    @given(job_id=job_ids, data=st.data())
    def wrong_token(job_id, data):
        headers = authorization_headers(data)
        params = {"token": ADMIN_TOKEN} if data.draw(st.booleans(), label="right token in the query") else {}
        # state-changing routes never take the token from the query string (a cross-site form could)
        replay = webhook.call("POST", f"/v1/jobs/{job_id}/replay", headers=headers, params=params)
        assert replay.status_code < 500, webhook.explain(replay)
        assert replay.status_code in (403, 404, 405), (replay.status_code, replay.text)
        listing = webhook.http.get("/v1/jobs", headers=headers, params={"status": "dead"})
        assert listing.status_code == 403, (listing.status_code, listing.text)
        assert ADMIN_TOKEN not in replay.text + listing.text
        assert database_state(db) == before, "a request without the admin token changed the database"

    wrong_token()
    # the control: the right token does replay the dead job
    replayed = webhook.http.post(f"/v1/jobs/{webhook.dead_job_id}/replay",
                                 headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert replayed.status_code == 200, replayed.text
    assert database_state(db) != before
