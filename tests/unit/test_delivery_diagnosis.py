"""Why QStash could not deliver, and what to check: the cause -> reason/fix mapping, by a table of
last answers as QStash reports them (its DLQ entries and failure callbacks)."""

from __future__ import annotations

import base64
import json

import pytest

from embedq.qstash.deliveries import diagnose, from_dead_letter, from_failure_callback

URL = "https://embedq.example.com/v1/jobs"


def embedq_error(message: str) -> str:
    return json.dumps({"error": message})


@pytest.mark.parametrize(
    ("status", "body", "headers", "must_say"),
    [
        pytest.param(
            401,
            embedq_error("invalid signature: signature does not match the current or the next signing key"),
            None,
            ["401", "QSTASH_CURRENT_SIGNING_KEY / QSTASH_NEXT_SIGNING_KEY", "does not match"],
            id="wrong signing keys",
        ),
        pytest.param(
            401,
            embedq_error("invalid signature: signature is for 'http://a/v1/jobs', not for 'http://b/v1/jobs' (sub)"),
            None,
            ["401", "EMBEDQ_WEBHOOK_URL must be the exact public URL"],
            id="URL differs from the signature's sub",
        ),
        pytest.param(
            401,
            embedq_error("signature verification is not configured (QSTASH_*_SIGNING_KEY, EMBEDQ_WEBHOOK_URL)"),
            None,
            ["set QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY on the webhook"],
            id="webhook without keys",
        ),
        pytest.param(404, "Not Found", None, ["404", "EMBEDQ_WEBHOOK_URL does not point at embedq"], id="404"),
        pytest.param(405, "Method Not Allowed", None, ["405", "POST /v1/jobs"], id="405"),
        pytest.param(
            301,
            "",
            {"Location": ["https://embedq.example.com/v1/jobs"]},
            ["redirects to https://embedq.example.com/v1/jobs", "final URL"],
            id="redirect",
        ),
        pytest.param(403, "Forbidden", None, ["403", "refuses QStash"], id="403 from a proxy"),
        pytest.param(413, embedq_error("body larger than 1000000 bytes"), None, ["EMBEDQ_MAX_BODY_BYTES"], id="413"),
        pytest.param(400, embedq_error("body is not JSON"), None, ["400", "proxy change the body"], id="400"),
        pytest.param(429, "Too Many Requests", None, ["429", "EMBEDQ_QSTASH_PARALLELISM"], id="429 in front"),
        pytest.param(
            503,
            embedq_error("database unavailable: connection refused"),
            None,
            ["503", "database unavailable", "see its log"],
            id="webhook up, cannot process",
        ),
        pytest.param(
            502, "<html>Bad Gateway</html>", None, ["proxy in front of it got no answer", "embedq serve"], id="502"
        ),
        pytest.param(
            0,
            "ConnectError: [Errno 111] Connection refused",
            None,
            ["could not reach", "Connection refused", "is `embedq serve`"],
            id="webhook down",
        ),
        pytest.param(
            None, "timeout: ReadTimeout", None, ["did not answer in time", "EMBEDQ_JOBS_PER_MESSAGE"], id="timeout"
        ),
        pytest.param(
            0,
            "ConnectError: [Errno -2] Name or service not known",
            None,
            ["does not resolve", "EMBEDQ_WEBHOOK_URL"],
            id="DNS",
        ),
        pytest.param(
            0, "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]", None, ["TLS", "certificate"], id="certificate"
        ),
        pytest.param(489, embedq_error("text refused"), None, ["gave up on the jobs", "text refused"], id="489"),
        pytest.param(418, "teapot", None, ["418", "anything but 2xx"], id="anything else"),
    ],
)
def test_each_last_answer_names_its_cause_and_fix(status, body, headers, must_say):
    reason = diagnose(status, body, URL, headers)
    for words in must_say:
        assert words in reason, reason
    assert "\n" not in reason


def test_a_long_answer_is_quoted_short():
    reason = diagnose(503, "x" * 10_000, URL)
    assert len(reason) < 700


def test_a_dead_letter_entry_and_a_failure_callback_read_alike():
    answer = embedq_error("invalid signature: signature does not match the current or the next signing key")
    entry = {
        "messageId": "msg_1",
        "url": URL,
        "responseStatus": 401,
        "responseBody": answer,
        "responseHeader": {"Content-Type": ["application/json"]},
        "dlqId": "1700000000000-0",
    }
    callback = {
        "sourceMessageId": "msg_1",
        "url": URL,
        "status": 401,
        "body": base64.b64encode(answer.encode()).decode(),
        "header": {"Content-Type": ["application/json"]},
        "retried": 3,
        "dlqId": "1700000000000-0",
    }
    sent = json.dumps({"jobs": [{"id": 7, "content_type": "course", "source_id": "1", "op": "upsert"}, {"id": 9}]})
    entry["body"] = sent
    callback["sourceBody"] = base64.b64encode(sent.encode()).decode()
    from_dlq, from_callback = from_dead_letter(entry), from_failure_callback(callback)
    assert from_dlq == from_callback
    assert from_dlq.job_ids == (7, 9)  # found even if the message id was never recorded
    assert (from_dlq.message_id, from_dlq.status, from_dlq.dlq_id) == ("msg_1", 401, "1700000000000-0")
    assert "QSTASH_CURRENT_SIGNING_KEY" in from_dlq.reason


def test_a_dead_letter_without_an_answer_and_a_binary_one():
    no_answer = from_dead_letter({"messageId": "msg_2", "url": URL, "responseBody": "ConnectError: refused"})
    assert no_answer.status is None and "could not reach" in no_answer.reason
    assert no_answer.job_ids == ()
    binary = from_dead_letter(
        {"messageId": "msg_3", "url": URL, "responseStatus": 500, "responseBodyBase64": base64.b64encode(b"\xff!")}
    )
    assert binary.status == 500 and "500" in binary.reason


@pytest.mark.parametrize("message_id", [None, "", 12, "x" * 201, "msg\n1"])
def test_a_failure_callback_without_a_sane_message_id_is_refused(message_id):
    with pytest.raises(ValueError, match="sourceMessageId"):
        from_failure_callback({"sourceMessageId": message_id, "status": 500})
