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
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from psycopg import sql

from embedq.settings import Settings
from embedq.testing import HashEmbedder
from embedq.webhook.app import create_app
from tests.http_server import free_port, serve_app
from tests.qstash_server import claims, encode, sign

# Keys as long as QStash's (32 characters): PyJWT warns about shorter HMAC keys.
CURRENT_KEY = "sig_HostileCurrentKey0000000000a"
NEXT_KEY = "sig_HostileNextKey00000000000000b"
ADMIN_TOKEN = "admin-token-for-hostile-input-0123456789"
MAX_BODY_BYTES = 64 * 1024
SIGNED_ROUTES = ("/v1/jobs", "/v1/failures", "/v1/maintenance")
LARGEST_BIGINT = 2**63 - 1
SEEDED_MESSAGE_ID = "msg_seeded_for_hostile_input"


def hypothesis_run(fault_scale, short: int = 80, long: int = 2000):
    """`make test`: a few dozen examples, the same ones every run; `make faults`: thousands, new each
    run. No example database (nothing written into the working tree); a failure prints its example."""
    return hypothesis_settings(
        max_examples=fault_scale.pick(short, long),
        deadline=None,
        database=None,
        report_multiple_bugs=False,
        derandomize=not fault_scale.long,
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
        return response.status_code, response.text[:300], self.errors.seen[self._errors_before :]


def seed_jobs(dsn: str) -> tuple[int, list[int]]:
    """Jobs in every interesting state, so a forged request that got through would change something:
    three dispatched under a known QStash message id, one dead (replayable), pending ones, and an
    application write still waiting in the inbox."""
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("INSERT INTO embedq_sample.courses (title) SELECT 'hostile ' || g FROM generate_series(1, 6) g")
        db.execute("SELECT embedq.jobs_ingest()")
        dispatched = [
            r[0] for r in db.execute("SELECT id FROM embedq.jobs_claim('seed', 3, '1 hour', NULL, 'dispatched')")
        ]
        db.execute(
            "SELECT embedq.jobs_set_message(%s::bigint[], %s, interval '1 hour')", (dispatched, SEEDED_MESSAGE_ID)
        )
        dead = db.execute(
            "UPDATE embedq.jobs SET status = 'dead', finished_at = now(), last_error = 'seeded' "
            "WHERE id = (SELECT min(id) FROM embedq.jobs WHERE status = 'pending') RETURNING id"
        ).fetchone()[0]
        db.execute("INSERT INTO embedq_sample.posts (title, body) VALUES ('waiting in the inbox', 'x')")
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
        with (
            start_blocking_portal() as portal,
            portal.wrap_async_context_manager(serve_app(app, port=port, lifespan="on")),
            httpx.Client(base_url=base, timeout=30) as http,
        ):
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
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**62, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
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
    st.fixed_dictionaries(
        {
            "id": st.integers(min_value=1, max_value=12),
            "content_type": json_values,
            "source_id": json_values,
            "op": json_values,
        }
    ),
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
    jobs_bodies,
    failure_bodies,
    maintenance_bodies,
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
        return (
            isinstance(jobs, list)
            and 1 <= len(jobs) <= 10_000
            and all(isinstance(j, dict) and type(j.get("id")) is int and 1 <= j["id"] <= LARGEST_BIGINT for j in jobs)
        )
    message_id, answer = payload.get("sourceMessageId"), payload.get("body")
    if not isinstance(message_id, str) or not message_id or not postgres_text(message_id):
        return False
    return not (answer not in (None, "") and not isinstance(answer, str))


def postgres_text(value: str) -> bool:
    """PostgreSQL text holds any UTF-8 except NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


# -- strategies: signatures ----------------------------------------------------------------------

FORGERIES = (
    "missing",
    "empty",
    "garbage",
    "three segments",
    "wrong key",
    "wrong body",
    "expired",
    "not yet valid",
    "issued in the future",
    "wrong iss",
    "wrong sub",
    "another route",
    "alg none",
    "other alg",
    "missing claim",
    "claim of the wrong type",
    "huge",
    "prefixed",
    "truncated",
    "tampered payload",
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
        key = data.draw(
            st.sampled_from(
                [
                    "sig_forged_key_00000000000000000",
                    CURRENT_KEY[:-1] + "b",
                    CURRENT_KEY.lower(),
                    NEXT_KEY + " ",
                    "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r",
                ]
            ),
            label="key",
        )  # the dev server's public key
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
        payload["iss"] = data.draw(
            st.one_of(st.text(max_size=10), st.sampled_from(["upstash", "Upstash ", "UPSTASH"])).filter(
                lambda s: s != "Upstash"
            ),
            label="iss",
        )
    elif kind == "wrong sub":
        payload["sub"] = data.draw(
            st.one_of(
                st.sampled_from(
                    [
                        url + "/",
                        url.replace("http://", "https://"),
                        url.replace("127.0.0.1", "localhost"),
                        url + "?x=1",
                        url.upper(),
                        "http://attacker.example/v1/jobs",
                        "",
                    ]
                ),
                st.text(max_size=40),
            ).filter(lambda s: s != url),
            label="sub",
        )
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
        token = (
            ".".join(
                base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode() for part in (header, payload)
            )
            + "."
        )
    else:
        token = encode(payload, key, algorithm)
    if kind == "huge":
        token = encode(
            {**payload, "pad": "x" * data.draw(st.integers(1_000, 40_000), label="padding")},
            "sig_forged_key_00000000000000000",
        )
    elif kind == "prefixed":
        token = (
            data.draw(st.sampled_from(["Bearer ", "bearer ", "v1,", "x", '"']), label="prefix")
            + token
            + data.draw(st.sampled_from(["", ".", "x", ".x", '"']), label="suffix")
        )
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


content_types = st.sampled_from(
    [
        b"application/json",
        b"text/plain",
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"application/json; charset=utf-16",
        b"",
        b"\xff\xfe",
        b"application/json" + b";" * 100,
    ]
)


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
    body = {
        "/v1/jobs": json.dumps({"jobs": [{"id": i} for i in webhook.dispatched_ids]}).encode(),
        "/v1/failures": json.dumps({"sourceMessageId": "msg_unknown", "status": 500, "retried": 3}).encode(),
        "/v1/maintenance": b'{"task": "maintenance"}',
    }[route]
    response = webhook.post(
        route,
        body,
        {
            "upstash-signature": sign(CURRENT_KEY, webhook.url(route), body).encode(),
            "content-type": b"application/json",
        },
    )
    assert response.status_code == 200, response.text
    if route == "/v1/jobs":
        assert db.execute("SELECT count(*) FROM embedq.embeddings").fetchone()[0] == len(webhook.dispatched_ids)


def test_validly_signed_malformed_bodies_get_a_4xx(webhook, db, fault_scale):
    before = database_state(db)

    @hypothesis_run(fault_scale)
    @given(route=st.sampled_from(SIGNED_ROUTES), data=st.data())
    def signed_malformed(route, data):
        body = data.draw(
            {
                "/v1/jobs": st.one_of(jobs_bodies, st.binary(max_size=100), json_values.map(dumps)),
                "/v1/failures": st.one_of(failure_bodies, st.binary(max_size=100), json_values.map(dumps)),
                "/v1/maintenance": st.one_of(maintenance_bodies, st.binary(max_size=100), json_values.map(dumps)),
            }[route],
            label="body",
        )
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
    response = webhook.post(
        route,
        body,
        {
            "upstash-signature": sign(CURRENT_KEY, webhook.url(route), body).encode(),
            "content-type": b"application/json",
        },
    )
    assert response.status_code == 400, webhook.explain(response)
    assert database_state(db) == before


def test_a_failure_callback_whose_answer_holds_NUL_bytes_is_not_a_5xx(webhook, db):
    """A genuine callback: the endpoint's last answer (base64 in `body`) had NUL bytes in it, as a
    proxy's binary error page may. The jobs of the message still count their failed delivery,
    with a readable reason."""
    body = json.dumps(
        {
            "sourceMessageId": SEEDED_MESSAGE_ID,
            "status": 502,
            "retried": 3,
            "body": base64.b64encode(b"bad gateway\x00\x00\xff").decode(),
        }
    ).encode()
    response = webhook.post(
        "/v1/failures", body, {"upstash-signature": sign(CURRENT_KEY, webhook.url("/v1/failures"), body).encode()}
    )
    assert response.status_code == 200, webhook.explain(response)
    rows = db.execute(
        "SELECT status::text, failed_deliveries, last_error FROM embedq.jobs WHERE id = ANY (%s)",
        (webhook.dispatched_ids,),
    ).fetchall()
    assert rows and all(
        status == "failed" and failed == 1 and "bad gateway" in error and SEEDED_MESSAGE_ID in error
        for status, failed, error in rows
    ), rows


BAD_ADMIN_TOKENS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            ADMIN_TOKEN[:-1],
            ADMIN_TOKEN + "x",
            ADMIN_TOKEN.upper(),
            ADMIN_TOKEN[1:],
            ADMIN_TOKEN * 2,
            CURRENT_KEY,
            "null",
            "undefined",
            "' OR '1'='1",
            ADMIN_TOKEN.replace("0", "O"),
        ]
    ),
).filter(lambda t: t.strip() != ADMIN_TOKEN)


def authorization_headers(data: st.DataObject) -> dict[str, bytes]:
    token = data.draw(BAD_ADMIN_TOKENS, label="token")
    style = data.draw(st.sampled_from(["bearer", "basic", "bare", "none", "query only", "scheme only"]), label="style")
    encoded = token.encode("utf-8")
    value = {
        "bearer": b"Bearer " + encoded,
        "basic": b"Basic " + base64.b64encode(b"admin:" + encoded),
        "bare": encoded,
        "scheme only": b"Bearer",
        "none": None,
        "query only": None,
    }[style]
    headers = {}
    if value is not None:
        headers["authorization"] = header_safe(value) if value.strip() else b"Bearer"
        if b"Bearer " + ADMIN_TOKEN.encode() == headers["authorization"].strip():
            headers["authorization"] = b"Bearer wrong"
    return headers


def test_admin_routes_refuse_wrong_tokens_and_change_nothing(webhook, db, fault_scale):
    before = database_state(db)
    job_ids = st.one_of(
        st.just(webhook.dead_job_id),
        st.integers(min_value=0, max_value=2**70).map(str),
        st.sampled_from(["-1", "abc", "1.5", "%00", "..", "1;DROP TABLE embedq.jobs"]),
    )

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
    replayed = webhook.http.post(
        f"/v1/jobs/{webhook.dead_job_id}/replay", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert replayed.status_code == 200, replayed.text
    assert database_state(db) != before


# -- (b) register_source with hostile identifiers ------------------------------------------------

CATALOG = r"""
SELECT 'relation ' || c.oid::regclass::text || ' ' || c.relkind::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname !~ '^pg_(toast|temp)'
UNION ALL
SELECT 'column ' || a.attrelid::regclass::text || ' ' || quote_ident(a.attname) || ' ' || a.atttypid::regtype::text
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp)'
UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
UNION ALL SELECT 'trigger ' || t.tgrelid::regclass::text || ' ' || quote_ident(t.tgname) || ' ' || t.tgenabled::text
          FROM pg_trigger t
UNION ALL SELECT 'schema ' || quote_ident(nspname) FROM pg_namespace WHERE nspname !~ '^pg_(toast|temp)'
UNION ALL SELECT 'role ' || quote_ident(rolname) FROM pg_roles
UNION ALL SELECT 'policy ' || polrelid::regclass::text || ' ' || quote_ident(polname) FROM pg_policy
UNION ALL SELECT 'event trigger ' || quote_ident(evtname) FROM pg_event_trigger
UNION ALL SELECT 'rows ' || relname || ' ' || n FROM (
    SELECT 'courses' AS relname, count(*) AS n FROM embedq_sample.courses UNION ALL
    SELECT 'posts', count(*) FROM embedq_sample.posts UNION ALL
    SELECT 'bystander', count(*) FROM public.bystander) AS counted
UNION ALL SELECT 'source ' || row_to_json(s)::text FROM embedq.sources s
"""

SAMPLE_TYPES = ("profile", "course", "lesson", "post", "comment")


def catalog(db: psycopg.Connection) -> set[str]:
    """Every relation, column, function, trigger, schema, role and policy, a few row counts and the
    registrations: what a hostile registration could create, drop or change."""
    return {row[0] for row in db.execute(CATALOG)}


def registration_objects(db: psycopg.Connection, content_type: str, table: str) -> set[str]:
    """What registering `content_type` on `table` (a regclass text) should add: three functions
    and three enabled triggers (plus its row in embedq.sources, checked apart)."""
    rows = db.execute(
        "SELECT 'function embedq.' || quote_ident(format('source_%%s_%%s', %(ct)s::text, kind)) || '()' "
        "FROM unnest(ARRAY['insert', 'update', 'delete']) kind "
        "UNION ALL SELECT 'trigger ' || %(t)s::regclass::text || ' ' "
        "       || quote_ident(format('embedq_%%s_%%s', %(ct)s::text, kind)) || ' O' "
        "FROM unnest(ARRAY['insert', 'update', 'delete']) kind",
        {"ct": content_type, "t": table},
    )
    return {row[0] for row in rows}


def is_clear_refusal(error: psycopg.Error) -> bool:
    """An error a user can act on: register_source's own `embedq: ...` messages, PostgreSQL refusing
    the arguments themselves (no such relation, bad name), or a permission error. Not an error from
    inside the SQL that register_source generates and runs (a syntax error there is a bug)."""
    message = error.diag.message_primary or ""
    if message.startswith("embedq:") or error.sqlstate == "42501":
        return True
    context = error.diag.context or ""
    generated = "register_source" in context and "EXECUTE" in context
    return not generated and error.sqlstate is not None and not error.sqlstate.startswith("XX")


def register(db: psycopg.Connection, content_type, table, fields, priority=3, key_column="id") -> None:
    db.execute(
        "SELECT embedq.register_source(%s, %s::text::regclass, %s::text[], %s, %s)",
        (content_type, table, fields, priority, key_column),
    )


def qualified(db: psycopg.Connection, schema: str, table: str) -> str:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table)).as_string(db)


def attempt_registration(db: psycopg.Connection, content_type, table, fields, priority=3, key_column="id"):
    """register_source in a savepoint; the error if it refused, None if it registered."""
    try:
        with db.transaction():
            register(db, content_type, table, fields, priority, key_column)
    except psycopg.Error as error:
        return error
    return None


def assert_registered_exactly(db, before: set[str], content_type: str, table: str, key: str, fields: list[str]):
    """The catalog gained exactly the registration's functions and triggers, and the sources row
    names the table meant, its key and fields."""
    source = db.execute(
        "SELECT table_name, key_column, fields FROM embedq.sources WHERE content_type = %s", (content_type,)
    ).fetchone()
    assert source is not None and source[1:] == (key, fields)
    resolved = db.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s::text::regclass",
        (table,),
    ).fetchone()[0]
    assert source[0] == resolved
    after = catalog(db)
    added = {item for item in after - before if not item.startswith("source ")}
    assert added == registration_objects(db, content_type, table), sorted(after ^ before)
    assert {item for item in before - after if not item.startswith("source ")} == set()


def assert_triggers_queue_jobs(db, content_type: str, table: sql.Composable, key: str, fields: list[str]) -> None:
    """Insert, update and delete a row of `table`: the registration's triggers queue its jobs, and
    source_rows reads the row back by its key."""
    key_value = "k'1;$body$"
    # values as literals, not parameters: with parameters psycopg reads a "%%" inside an identifier as "%"
    db.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            table,
            sql.SQL(", ").join(sql.Identifier(c) for c in [key, *fields]),
            sql.SQL(", ").join(sql.Literal(v) for v in [key_value, *["v" for _ in fields]]),
        )
    )
    db.execute("SELECT embedq.jobs_ingest()")
    job = db.execute(
        "SELECT op::text FROM embedq.jobs WHERE content_type = %s AND source_id = %s AND status = 'pending'",
        (content_type, key_value),
    ).fetchone()
    assert job == ("upsert",)
    rows = db.execute("SELECT source_id, fields FROM embedq.source_rows(%s, ARRAY[%s])", (content_type, key_value))
    assert rows.fetchall() == [(key_value, {f: "v" for f in fields})]
    db.execute("UPDATE embedq.jobs SET status = 'done', finished_at = now() WHERE content_type = %s", (content_type,))
    db.execute(sql.SQL("UPDATE {} SET {} = 'changed'").format(table, sql.Identifier(fields[0])))
    db.execute("SELECT embedq.jobs_ingest()")
    ops = db.execute(
        "SELECT op::text FROM embedq.jobs WHERE content_type = %s AND status = 'pending'", (content_type,)
    ).fetchall()
    assert ops == [("upsert",)]
    db.execute(sql.SQL("DELETE FROM {}").format(table))
    db.execute("SELECT embedq.jobs_ingest()")
    ops = db.execute(
        "SELECT op::text FROM embedq.jobs WHERE content_type = %s AND status = 'pending'", (content_type,)
    ).fetchall()
    assert ops == [("delete",)]  # coalesced into the row's one pending job


FRAGMENTS = [
    '"',
    "'",
    ";",
    "--",
    "/*",
    "*/",
    "$",
    "$$",
    "$body$",
    "$fn$",
    "$q$",
    "%I",
    "%s",
    "%1$s",
    "%%",
    "\\",
    " ",
    "DROP TABLE public.bystander",
    "x",
    "Id",
    "é",
    "表",
    "😀",
    "\t",
    "\n",
    "(",
    ")",
    ",",
    ".",
    "::text",
    "pg_",
    "embedq",
    "E'\\x'",
    'U&"\\0041"',
]
identifiers = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=16),
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=5).map("".join),
).filter(lambda name: len(name.encode()) <= 63)
content_type_names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,39}", fullmatch=True).filter(lambda name: name not in SAMPLE_TYPES),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=45),
)


@pytest.fixture
def catalog_db(dsn) -> Iterator[psycopg.Connection]:
    """A connection whose work is rolled back example by example; a bystander table to watch."""
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE public.bystander (id int PRIMARY KEY, note text)")
        setup.execute("INSERT INTO public.bystander VALUES (1, 'still here')")
    with psycopg.connect(dsn) as connection:
        # bare names like `courses` in the cases below mean the sample application's tables
        connection.execute("SET search_path = embedq_sample, public")
        connection.commit()
        yield connection


def test_generated_identifiers_register_exactly_their_table_or_fail_clearly(catalog_db, fault_scale):
    db = catalog_db

    @hypothesis_run(fault_scale, short=60, long=1500)
    @given(
        schema=identifiers,
        table=identifiers,
        key=identifiers,
        fields=st.lists(identifiers, min_size=1, max_size=3, unique=True),
        content_type=content_type_names,
    )
    @example(schema="s", table="t", key="id", fields=["a$body$b"], content_type="dollar_in_a_field")
    @example(schema="s", table="t", key="$body$", fields=["b"], content_type="dollar_in_the_key")
    @example(
        schema='x"; DROP TABLE public.bystander; --',
        table="t'; DROP TABLE public.bystander; --",
        key="id); DROP TABLE public.bystander; --",
        fields=["%I %s %1$s", "é 表 😀"],
        content_type="quoted",
    )
    def registration(schema, table, key, fields, content_type):
        assume(key not in fields)
        with db.transaction(force_rollback=True):
            try:
                with db.transaction():
                    db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                    db.execute(
                        sql.SQL("CREATE TABLE {}.{} ({} text PRIMARY KEY, {})").format(
                            sql.Identifier(schema),
                            sql.Identifier(table),
                            sql.Identifier(key),
                            sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(f)) for f in fields),
                        )
                    )
            except psycopg.Error:
                assume(False)  # a name PostgreSQL itself refuses (pg_ schemas, ...): not our concern
            name = qualified(db, schema, table)
            before = catalog(db)
            error = attempt_registration(db, content_type, name, fields, 3, key)
            if error is not None:
                assert is_clear_refusal(error), (error.sqlstate, str(error)[:500])
                assert catalog(db) == before
                return
            assert_registered_exactly(db, before, content_type, name, key, fields)
            assert_triggers_queue_jobs(db, content_type, sql.Identifier(schema, table), key, fields)

    registration()


INJECTION_ATTEMPTS = {
    "content type closes the string": ("x'); DROP TABLE public.bystander; --", "courses", ["title"], "id"),
    "content type with a quote": ("course'", "courses", ["title"], "id"),
    "content type in capitals": ("Course", "courses", ["title"], "id"),
    "content type too long": ("c" * 41, "courses", ["title"], "id"),
    "content type unicode": ("cöurse", "courses", ["title"], "id"),
    "content type empty": ("", "courses", ["title"], "id"),
    "table with a statement after it": ("inj", "courses; DROP TABLE public.bystander", ["title"], "id"),
    "table with a quote": ("inj", "courses' OR '1'='1", ["title"], "id"),
    "table quoted then a statement": ("inj", '"courses"; DROP TABLE public.bystander; --', ["title"], "id"),
    "table with too many dots": ("inj", "a.b.c.d", ["title"], "id"),
    "table that does not exist": ("inj", "public.no_such_table", ["title"], "id"),
    "table named like a function call": ("inj", "pg_sleep(10)", ["title"], "id"),
    "field that closes the identifier": ("inj", "courses", ['title", "description'], "id"),
    "field with a statement": ("inj", "courses", ["title); DROP TABLE public.bystander; --"], "id"),
    "field with a format directive": ("inj", "courses", ["%I%s%1$s"], "id"),
    "field in another case": ("inj", "courses", ["Title"], "id"),
    "field with a trailing space": ("inj", "courses", ["title "], "id"),
    "field empty": ("inj", "courses", [""], "id"),
    "field NULL": ("inj", "courses", [None], "id"),
    "system column as field": ("inj", "courses", ["ctid"], "id"),
    "key with a statement": ("inj", "courses", ["title"], "id); DROP TABLE public.bystander; --"),
    "key that is a system column": ("inj", "courses", ["title"], "ctid"),
    "key oid": ("inj", "courses", ["title"], "oid"),
    "key NULL": ("inj", "courses", ["title"], None),
    "field longer than an identifier": ("inj", "courses", ["t" * 64], "id"),
}


@pytest.mark.parametrize("case", sorted(INJECTION_ATTEMPTS))
def test_injection_attempts_fail_clearly_and_change_nothing(catalog_db, case):
    db = catalog_db
    content_type, table, fields, key = INJECTION_ATTEMPTS[case]
    before = catalog(db)
    error = attempt_registration(db, content_type, table, fields, 3, key)
    assert error is not None, "registered"
    assert is_clear_refusal(error), (error.sqlstate, str(error)[:300])
    assert catalog(db) == before


def test_the_same_name_in_another_schema_registers_that_table_only(catalog_db):
    db = catalog_db
    db.execute("CREATE SCHEMA other")
    db.execute("CREATE TABLE other.courses (id bigint PRIMARY KEY, title text)")
    before = catalog(db)
    register(db, "other_course", "other.courses", ["title"])
    assert_registered_exactly(db, before, "other_course", "other.courses", "id", ["title"])
    db.execute("INSERT INTO embedq_sample.courses (title) VALUES ('sample one')")
    db.execute("INSERT INTO other.courses VALUES (7, 'other one')")
    db.execute("SELECT embedq.jobs_ingest()")
    other_jobs = db.execute("SELECT source_id FROM embedq.jobs WHERE content_type = 'other_course'").fetchall()
    assert other_jobs == [("7",)]
    # a search_path that puts `other` first: the bare name means other.courses, and that is what is recorded
    db.execute("SET search_path = other, public")
    register(db, "shadowed", "courses", ["title"])
    assert db.execute("SELECT table_name FROM embedq.sources WHERE content_type = 'shadowed'").fetchone() == (
        "other.courses",
    )
    db.commit()


UNUSABLE_TABLES = {
    "system catalog pg_class": ("pg_catalog.pg_class", ["relname"], "oid"),
    "system catalog pg_authid": ("pg_catalog.pg_authid", ["rolname"], "oid"),
    "information_schema view": ("information_schema.tables", ["table_name"], "table_name"),
    "statistics view": ("pg_catalog.pg_stat_activity", ["query"], "pid"),
    "embedq's outbox": ("embedq.jobs", ["content_type"], "id"),
    "embedq's inbox": ("embedq.job_inbox", ["content_type"], "id"),
    "embedq's registrations": ("embedq.sources", ["table_name"], "content_type"),
    "embedq's models": ("embedq.models", ["provider"], "name"),
    "embedq's search log": ("embedq.search_log", ["query"], "id"),
    "embedq's workers": ("embedq.workers", ["mode"], "name"),
}


@pytest.mark.parametrize("case", sorted(UNUSABLE_TABLES))
def test_tables_embedq_must_not_watch_are_refused(catalog_db, case):
    """System catalogs, views and embedq's own tables: registering one must be refused. (A trigger
    on embedq.job_inbox re-fires on its own insert, so every application write would fail with
    "stack depth limit exceeded"; one on embedq.jobs queues a job for every job, forever.)"""
    db = catalog_db
    table, fields, key = UNUSABLE_TABLES[case]
    before = catalog(db)
    error = attempt_registration(db, "unusable", table, fields, 3, key)
    # whatever happened, the application's writes must still queue their jobs, and only theirs
    with db.transaction(force_rollback=True):
        try:
            db.execute("INSERT INTO embedq_sample.courses (title) VALUES ('an application write')")
            db.execute("SELECT embedq.jobs_ingest()")
            db.execute("SELECT embedq.jobs_ingest()")
        except psycopg.Error as write_error:
            pytest.fail(f"after registering {table}, an application write fails: {str(write_error)[:120]}")
        queued = db.execute("SELECT content_type, count(*) FROM embedq.jobs GROUP BY 1 ORDER BY 1").fetchall()
        assert queued == [("course", 1)], f"after registering {table}, one write queued {queued}"
    assert error is not None, f"{table} was registered as a source"
    assert is_clear_refusal(error), (error.sqlstate, str(error)[:300])
    assert catalog(db) == before


OTHER_RELATIONS = {
    "view": "CREATE VIEW hostile_rel AS SELECT id, title FROM embedq_sample.courses",
    "materialized view": "CREATE MATERIALIZED VIEW hostile_rel AS SELECT id, title FROM embedq_sample.courses",
    "sequence": "CREATE SEQUENCE hostile_rel",
    "index": "CREATE UNIQUE INDEX hostile_rel ON embedq_sample.courses (title, id)",
    "composite type": "CREATE TYPE hostile_rel AS (id bigint, title text)",
}


@pytest.mark.parametrize("kind", sorted(OTHER_RELATIONS))
def test_relations_that_are_not_tables_are_refused(catalog_db, kind):
    db = catalog_db
    db.execute(OTHER_RELATIONS[kind])
    before = catalog(db)
    error = attempt_registration(db, "not_a_table", "hostile_rel", ["title"], 3, "id")
    assert error is not None and is_clear_refusal(error), error
    assert "is not a table" in str(error) or "does not exist" in str(error)
    assert catalog(db) == before


KEYS_THAT_DO_NOT_IDENTIFY_A_ROW = {
    "no index": "CREATE TABLE hostile_keys (slug text, body text)",
    "plain index": "CREATE TABLE hostile_keys (slug text, body text); CREATE INDEX ON hostile_keys (slug)",
    "partial unique index": "CREATE TABLE hostile_keys (slug text, body text); "
    "CREATE UNIQUE INDEX ON hostile_keys (slug) WHERE body IS NOT NULL",
    "unique on two columns": "CREATE TABLE hostile_keys (slug text, body text, UNIQUE (slug, body))",
    "unique on an expression": "CREATE TABLE hostile_keys (slug text, body text); "
    "CREATE UNIQUE INDEX ON hostile_keys (lower(slug))",
    "dropped key column": "CREATE TABLE hostile_keys (slug text UNIQUE, body text); "
    "ALTER TABLE hostile_keys DROP COLUMN slug",
}


@pytest.mark.parametrize("case", sorted(KEYS_THAT_DO_NOT_IDENTIFY_A_ROW))
def test_key_columns_that_do_not_identify_one_row_are_refused(catalog_db, case):
    db = catalog_db
    db.execute(KEYS_THAT_DO_NOT_IDENTIFY_A_ROW[case])
    before = catalog(db)
    error = attempt_registration(db, "keyless", "hostile_keys", ["body"], 3, "slug")
    assert error is not None and is_clear_refusal(error), error
    assert "has no unique index" in str(error) or "does not exist" in str(error)
    assert catalog(db) == before


def test_a_dropped_column_cannot_be_named_by_its_internal_name(catalog_db):
    db = catalog_db
    db.execute("CREATE TABLE hostile_dropped (id bigint PRIMARY KEY, gone text, body text)")
    db.execute("ALTER TABLE hostile_dropped DROP COLUMN gone")
    internal = db.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'hostile_dropped'::regclass AND attisdropped"
    ).fetchone()[0]
    before = catalog(db)
    error = attempt_registration(db, "dropped", "hostile_dropped", [internal], 3, "id")
    assert error is not None and "does not exist" in str(error), error
    assert catalog(db) == before


def test_a_row_with_a_null_key_does_not_stop_the_queue(catalog_db):
    """A unique index allows any number of NULLs. If register_source accepts a nullable key, a row
    whose key is NULL must not break job intake for every other table."""
    db = catalog_db
    db.execute("CREATE TABLE hostile_nullable (slug text UNIQUE, body text)")
    error = attempt_registration(db, "nullable", "hostile_nullable", ["body"], 3, "slug")
    if error is not None:  # refusing a nullable key is a fine answer too
        assert is_clear_refusal(error) and "slug" in str(error), error
        return
    db.execute("INSERT INTO hostile_nullable VALUES (NULL, 'no key'), ('a', 'keyed')")
    db.execute("INSERT INTO embedq_sample.courses (title) VALUES ('an innocent course')")
    try:
        with db.transaction():
            db.execute("SELECT embedq.jobs_ingest()")
    except psycopg.Error as ingest_error:
        pytest.fail(f"one NULL key stops every job from being queued: {str(ingest_error)[:160]}")
    queued = set(db.execute("SELECT content_type, source_id FROM embedq.jobs").fetchall())
    assert {("course", "1"), ("nullable", "a")} <= queued


def test_long_and_unicode_names_register_exactly_their_table(catalog_db):
    db = catalog_db
    schema, table = "ünïcødé 表", "t" * 50 + "😀😀😀"  # 62 bytes
    key, field = "ключ", "поле ✓ \"quoted\" 'single'"
    db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    db.execute(
        sql.SQL("CREATE TABLE {} ({} text PRIMARY KEY, {} text)").format(
            sql.Identifier(schema, table), sql.Identifier(key), sql.Identifier(field)
        )
    )
    name = qualified(db, schema, table)
    before = catalog(db)
    content_type = "u" * 40  # the longest content type allowed
    register(db, content_type, name, [field], 9, key)
    assert_registered_exactly(db, before, content_type, name, key, [field])
    assert_triggers_queue_jobs(db, content_type, sql.Identifier(schema, table), key, [field])


def test_a_dollar_quote_in_a_column_name_cannot_run_sql(catalog_db):
    """register_source writes its trigger functions as `AS $body$ ... $body$` with the column names
    inside: a column named with `$body$` ends the function text early, and what follows runs as
    SQL in register_source's own (owner's) session. PL/pgSQL's body check usually turns that into a
    syntax error; with check_function_bodies off (as pg_dump/restore sessions and some migration
    tools set it), the statement in the column name runs."""
    db = catalog_db
    column = "$body$;DROP TABLE IF EXISTS public.bystander;SELECT $body$"
    db.execute(sql.SQL("CREATE TABLE hostile_dollar (id text PRIMARY KEY, {} text)").format(sql.Identifier(column)))
    db.execute("SET check_function_bodies = off")
    before = catalog(db)
    error = attempt_registration(db, "dollar", "hostile_dollar", [column], 3, "id")
    assert db.execute("SELECT to_regclass('public.bystander')").fetchone()[0] is not None, (
        "a column name dropped a table"
    )
    if error is None:
        db.execute("SET check_function_bodies = on")
        assert_registered_exactly(db, before, "dollar", "hostile_dollar", "id", [column])
        assert_triggers_queue_jobs(db, "dollar", sql.Identifier("hostile_dollar"), "id", [column])
    else:
        assert is_clear_refusal(error), (error.sqlstate, str(error)[:300])
        assert catalog(db) == before


# -- (c) the CLI fed garbage ---------------------------------------------------------------------

CLI_PASSWORD = "cli-secret-pw-4711"
UNREACHABLE = f"postgresql://embedq:{CLI_PASSWORD}@127.0.0.1:1/nowhere"


def bad_url(url: str) -> dict[str, str]:
    return {"DATABASE_URL": url}


# name: (arguments, environment); DATABASE_URL is an unreachable server unless the case sets it.
CLI_GARBAGE: dict[str, tuple[list[str], dict[str, str]]] = {
    "no command": ([], {}),
    "unknown command": (["no-such-command"], {}),
    "misspelled command": (["stauts"], {}),
    "unknown jobs command": (["jobs", "explode", "1"], {}),
    "unknown models command": (["models", "upgrade"], {}),
    "unknown option": (["status", "--no-such-option"], {}),
    "option of another command": (["status", "--drain"], {}),
    "extra argument": (["status", "extra"], {}),
    "argument that is not UTF-8": (["status", "\udcff\udcfe"], {}),
    "job id not a number": (["jobs", "show", "abc"], {}),
    "job id zero": (["jobs", "show", "0"], {}),
    "job id negative": (["jobs", "cancel", "--", "-1"], {}),
    "job id with a fraction": (["jobs", "retry", "1.5"], {}),
    "job id in hex": (["jobs", "show", "0x10"], {}),
    "job id missing": (["jobs", "show"], {}),
    "replay since not a date": (["replay", "--since", "yesterday"], {}),
    "replay since an impossible date": (["replay", "--since", "2026-13-45"], {}),
    "replay until empty": (["replay", "--until", ""], {}),
    "replay since an offset out of range": (["replay", "--since", "2026-01-01T00:00:00+99:00"], {}),
    "replay unknown status": (["replay", "--status", "bogus"], {}),
    "replay empty status": (["replay", "--status", ","], {}),
    "replay pending status": (["replay", "--status", "pending", "--yes"], {}),
    "replay id not a number": (["replay", "--id", "abc"], {}),
    "replay id zero": (["replay", "--id", "0"], {}),
    "search without text": (["search"], {}),
    "search k zero": (["search", "x", "-k", "0"], {}),
    "search k not a number": (["search", "x", "-k", "ten"], {}),
    "search k too large": (["search", "x", "-k", "1001"], {}),
    "serve port zero": (["serve", "--port", "0"], {}),
    "serve port too large": (["serve", "--port", "70000"], {}),
    "up port not a number": (["up", "--port", "http"], {}),
    "backfill without type": (["backfill"], {}),
    "backfill priority zero": (["backfill", "--type", "course", "--priority", "0"], {}),
    "backfill priority ten": (["backfill", "--type", "course", "--priority", "10"], {}),
    "maintenance negative days": (["maintenance", "--done-days", "-1"], {}),
    "verify type without value": (["verify", "--type"], {}),
    "models activate without name": (["models", "activate"], {}),
    "batch size not a number": (["status"], {"EMBEDQ_BATCH_SIZE": "abc"}),
    "batch size negative": (["status"], {"EMBEDQ_BATCH_SIZE": "-3"}),
    "batch size in exponent form": (["status"], {"EMBEDQ_BATCH_SIZE": "1e3"}),
    "poll interval a word": (["listen", "--drain"], {"EMBEDQ_POLL_INTERVAL": "soon"}),
    "provider unknown": (["status"], {"EMBEDQ_PROVIDER": "bogus"}),
    "provider openai without key": (["status"], {"EMBEDQ_PROVIDER": "openai"}),
    "model the local provider lacks": (["status"], {"EMBEDQ_MODEL": "gpt-9"}),
    "dimensions zero": (["status"], {"EMBEDQ_DIMENSIONS": "0"}),
    "log format unknown": (["status"], {"EMBEDQ_LOG_FORMAT": "xml"}),
    "log level unknown": (["status"], {"EMBEDQ_LOG_LEVEL": "LOUD"}),
    "log level a number": (["status"], {"EMBEDQ_LOG_LEVEL": "5"}),
    "port setting not a number": (["serve"], {"EMBEDQ_PORT": "eighty"}),
    "max body zero": (["serve"], {"EMBEDQ_MAX_BODY_BYTES": "0"}),
    "chunk overlap above chunk size": (["status"], {"EMBEDQ_CHUNK_OVERLAP_TOKENS": "999"}),
    "openai batch above the API limit": (
        ["status"],
        {"EMBEDQ_PROVIDER": "openai", "OPENAI_API_KEY": "sk-x", "EMBEDQ_OPENAI_BATCH_SIZE": "5000"},
    ),
    "qstash token without webhook url": (["status"], {"QSTASH_TOKEN": "tok"}),
    "database url not a url": (["status"], bad_url("not a url")),
    "database url of another database": (["status"], bad_url(f"mysql://root:{CLI_PASSWORD}@db/app")),
    "database url with an unclosed IPv6 host": (["status"], bad_url(f"postgresql://u:{CLI_PASSWORD}@[::1/db")),
    "database url with a port that is not a number": (["status"], bad_url(f"postgresql://u:{CLI_PASSWORD}@h:pg/db")),
    "database url with a port out of range": (["status"], bad_url(f"postgresql://u:{CLI_PASSWORD}@127.0.0.1:99999/db")),
    "database url with a bad sslmode": (["status"], bad_url(f"{UNREACHABLE}?sslmode=bogus")),
    "database url with an unknown host": (
        ["status"],
        bad_url(f"postgresql://u:{CLI_PASSWORD}@no-such-host.invalid/db"),
    ),
    "database url with a missing socket dir": (
        ["status"],
        bad_url(f"postgresql://u:{CLI_PASSWORD}@/db?host=/nonexistent"),
    ),
    **{
        f"unreachable database: {' '.join(args)}": (args, {})
        for args in (
            ["status"],
            ["migrate"],
            ["listen", "--drain"],
            ["listen"],
            ["serve"],
            ["up"],
            ["demo"],
            ["search", "bread"],
            ["verify"],
            ["backfill", "--type", "course"],
            ["replay", "--yes"],
            ["maintenance"],
            ["jobs", "show", "1"],
            ["jobs", "cancel", "1"],
            ["jobs", "retry", "1"],
            ["models", "list"],
            ["models", "activate", "x"],
            ["models", "drop", "x", "--yes"],
        )
    },
}


# The short run (`make test`) takes one or two cases of each kind; `make faults` runs them all.
SHORT_CLI_CASES = {
    "no command",
    "unknown command",
    "unknown option",
    "argument that is not UTF-8",
    "job id not a number",
    "job id negative",
    "replay since not a date",
    "replay since an impossible date",
    "replay unknown status",
    "search k not a number",
    "serve port too large",
    "batch size not a number",
    "provider unknown",
    "log level unknown",
    "qstash token without webhook url",
    "database url not a url",
    "database url with an unclosed IPv6 host",
    "database url with a port that is not a number",
    "database url with a port out of range",
    "unreachable database: status",
    "unreachable database: serve",
    "unreachable database: up",
    "unreachable database: demo",
    "unreachable database: replay --yes",
}


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    clean.update({"DATABASE_URL": UNREACHABLE, "EMBEDQ_DATA_DIR": "/nonexistent/embedq-must-not-start"}, **env)
    return subprocess.run(
        [sys.executable, "-m", "embedq", *args],
        env=clean,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def cli_results(fault_scale) -> dict[str, subprocess.CompletedProcess]:
    """The garbage cases of this run, each a real process, a few at a time."""
    chosen = {name: case for name, case in CLI_GARBAGE.items() if fault_scale.long or name in SHORT_CLI_CASES}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_cli, *case) for name, case in chosen.items()}
        return {name: future.result() for name, future in futures.items()}


def assert_one_line_error(result: subprocess.CompletedProcess, secrets: tuple[str, ...] = (CLI_PASSWORD,)) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, result.stderr[-1500:]
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr[-1500:]
    assert result.stderr.startswith("embedq: error: "), result.stderr
    for secret in secrets:
        assert secret not in output


@pytest.mark.parametrize("case", list(CLI_GARBAGE))
def test_garbage_on_the_command_line_gets_one_line_and_exit_code_2(cli_results, case):
    if case not in cli_results:
        pytest.skip("run by `make faults` (--faults-long)")
    assert_one_line_error(cli_results[case])


MIGRATED_DATABASE_GARBAGE = {
    "job id beyond bigint": ["jobs", "show", "99999999999999999999"],
    "cancel id beyond bigint": ["jobs", "cancel", "9223372036854775808"],
    "replay id beyond bigint": ["replay", "--id", "99999999999999999999", "--dry-run"],
    "job that does not exist": ["jobs", "retry", "424242"],
    "backfill of an unknown type": ["backfill", "--type", "no_such_type"],
    "activate an unknown model": ["models", "activate", "no-such-model"],
    "drop an unknown model": ["models", "drop", "no-such-model", "--yes"],
    "verify an unknown type": ["verify", "--type", "no_such_type"],
    "replay without --yes and no terminal": ["replay", "--status", "dead,failed,done", "--id", "1"],
}


SHORT_MIGRATED_DATABASE_CASES = {"job id beyond bigint", "verify an unknown type", "backfill of an unknown type"}


@pytest.mark.parametrize("case", list(MIGRATED_DATABASE_GARBAGE))
def test_garbage_against_a_real_database_gets_one_line_and_exit_code_2(dsn, fault_scale, case):
    if not fault_scale.long and case not in SHORT_MIGRATED_DATABASE_CASES:
        pytest.skip("run by `make faults` (--faults-long)")
    with psycopg.connect(dsn, autocommit=True) as db:  # one finished job, so `replay --id 1` has something
        db.execute("INSERT INTO embedq_sample.courses (title) VALUES ('replayable')")
        db.execute("SELECT embedq.jobs_ingest()")
        db.execute("UPDATE embedq.jobs SET status = 'dead', finished_at = now(), last_error = 'x'")
        before = database_state(db)
        assert_one_line_error(run_cli(MIGRATED_DATABASE_GARBAGE[case], {"DATABASE_URL": dsn}), secrets=())
        assert database_state(db) == before


# Generated command lines run in one long-lived process (`embedq.cli.main` called per line, as
# the `embedq` script does), so hypothesis can try hundreds in seconds. `serve`, `up` and `demo`,
# EMBEDQ_LOG_LEVEL and malformed DATABASE_URLs are left to the named cases above: they fail there
# today, and here they would hide everything else behind the same finding.
CLI_DRIVER = r"""
import contextlib, io, json, os, sys, traceback
from embedq.cli import main
base = dict(os.environ)
for line in sys.stdin:
    case = json.loads(line)
    os.environ.clear()
    os.environ.update(base)
    os.environ.update(case["env"])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(case["argv"])
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
    sys.__stdout__.write(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
    sys.__stdout__.flush()
"""

COMMANDS = [
    ["status"],
    ["migrate"],
    ["listen"],
    ["search"],
    ["backfill"],
    ["verify"],
    ["replay"],
    ["maintenance"],
    ["jobs", "show"],
    ["jobs", "cancel"],
    ["jobs", "retry"],
    ["models", "list"],
    ["models", "activate"],
    ["models", "drop"],
    ["jobs"],
    ["models"],
    ["nonsense"],
]
OPTIONS = [
    "--json",
    "--type",
    "-t",
    "-k",
    "--id",
    "--since",
    "--until",
    "--status",
    "--dry-run",
    "--yes",
    "-y",
    "--port",
    "--host",
    "--drain",
    "--priority",
    "--done-days",
    "--retry-failed",
    "--fix",
    "--model",
    "--",
    "-",
    "--type=",
    "--id=0",
    "-kk",
    "--no-such-option",
]
argument_values = st.one_of(
    st.sampled_from(OPTIONS),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(
        [
            "2026-13-45",
            "yesterday",
            "2026-01-01T00:00:00+99:00",
            "failed,dead,",
            "done,pending",
            "",
            " ",
            "course",
            "1e9",
            "0x1F",
            "NaN",
            "∞",
            "١٢",
            "'; DROP TABLE embedq_sample.courses; --",
        ]
    ),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
)
command_lines = st.builds(
    lambda command, rest: command + rest, st.sampled_from(COMMANDS), st.lists(argument_values, max_size=5)
)
garbage_settings = st.dictionaries(
    st.sampled_from(
        [
            "EMBEDQ_BATCH_SIZE",
            "EMBEDQ_POLL_INTERVAL",
            "EMBEDQ_PROVIDER",
            "EMBEDQ_MODEL",
            "EMBEDQ_DIMENSIONS",
            "EMBEDQ_LOG_FORMAT",
            "EMBEDQ_PORT",
            "EMBEDQ_MAX_ATTEMPTS",
            "EMBEDQ_CHUNK_TOKENS",
            "EMBEDQ_CHUNK_OVERLAP_TOKENS",
            "EMBEDQ_HNSW_MIN_ROWS",
            "QSTASH_TOKEN",
            "EMBEDQ_OPENAI_BATCH_SIZE",
            "EMBEDQ_METRICS_PORT",
            "EMBEDQ_LEASE_SECONDS",
        ]
    ),
    st.one_of(
        st.sampled_from(
            ["abc", "-1", "0", "1e3", "nan", "inf", "", " ", "99999999999999999999", "openai", "local", "json"]
        ),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=("Cs",)), max_size=8),
    ),
    max_size=3,
)


def test_generated_command_lines_get_one_line_and_exit_code_2(fault_scale):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDQ_", "QSTASH_", "OPENAI_"))}
    env.update(DATABASE_URL=UNREACHABLE, EMBEDQ_DATA_DIR="/nonexistent/embedq-must-not-start")
    driver = subprocess.Popen(
        [sys.executable, "-c", CLI_DRIVER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )

    def run(argv: list[str], settings: dict[str, str]) -> subprocess.CompletedProcess:
        assert driver.stdin is not None and driver.stdout is not None
        driver.stdin.write(json.dumps({"argv": argv, "env": settings}) + "\n")
        driver.stdin.flush()
        answer = json.loads(driver.stdout.readline())
        return subprocess.CompletedProcess(argv, answer["code"], answer["stdout"], answer["stderr"])

    @hypothesis_run(fault_scale, short=100, long=3000)
    @given(argv=command_lines, settings=garbage_settings)
    def garbage(argv, settings):
        assert_one_line_error(run(argv, settings))

    try:
        garbage()
    finally:
        driver.stdin.close()
        try:
            driver.wait(timeout=30)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
        driver.stdout.close()
