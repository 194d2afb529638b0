"""webhook.signature.SignatureVerifier against tokens made by the QStash server's own signer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from embedq.qstash.signature import InvalidSignature, SignatureVerifier
from tests.qstash_server.signing import body_hash, claims, encode, sign

CURRENT_KEY = "sig_7kYjw48mhY7kAjqNGcy6cr29RJ6r"
NEXT_KEY = "sig_5ZB6DVzB1wjE8S6rZ7eenA8Pdnhs"
FORGED_KEY = "sig_3mKq8XvTz2LpW9cRb6YhN4dFs7Ga"
URL = "https://embedq.example.com/v1/jobs"
BODY = b'{"jobs": [{"id": 1, "content_type": "post", "source_id": "42", "op": "upsert"}]}'
LEEWAY = 60


def forged(key: str = CURRENT_KEY, algorithm: str = "HS256", **changes: Any) -> Callable[[float], str]:
    """A token maker: the claims QStash would sign for URL and BODY at `now`, with `changes`."""

    def make(now: float) -> str:
        payload = claims(URL, BODY, now)
        for name, value in changes.items():
            if value is None:
                payload.pop(name)
            else:
                payload[name] = value(now) if callable(value) else value
        return encode(payload, key, algorithm)

    return make


@dataclass
class Case:
    token: Callable[[float], str | None]
    #: None: accepted; else a fragment of the InvalidSignature message
    rejected: str | None = None
    body: bytes = BODY
    verifier: dict[str, Any] = field(default_factory=dict)


CASES = {
    "valid, current key": Case(lambda now: sign(CURRENT_KEY, URL, BODY, now)),
    "valid, next key only": Case(lambda now: sign(NEXT_KEY, URL, BODY, now)),
    "next key, but no next key configured": Case(
        lambda now: sign(NEXT_KEY, URL, BODY, now), "current or the next signing key", verifier={"next_key": None}
    ),
    "forged key": Case(lambda now: sign(FORGED_KEY, URL, BODY, now), "current or the next signing key"),
    "expired": Case(forged(iat=lambda now: int(now) - 1000, exp=lambda now: int(now) - 700), "expired"),
    "expired within leeway": Case(forged(exp=lambda now: int(now) - 30)),
    "future iat within leeway": Case(forged(iat=lambda now: int(now) + 30, exp=lambda now: int(now) + 330)),
    "future iat beyond leeway": Case(
        forged(iat=lambda now: int(now) + 600, exp=lambda now: int(now) + 900), "not yet valid"
    ),
    "nbf beyond leeway": Case(forged(nbf=lambda now: int(now) + 600), "not yet valid"),
    "wrong sub": Case(forged(sub="https://embedq.example.com/v1/other"), "(sub)"),
    "sub with another scheme": Case(forged(sub="http://embedq.example.com/v1/jobs"), "(sub)"),
    "wrong issuer": Case(forged(iss="Mallory"), "(iss)"),
    "wrong body": Case(lambda now: sign(CURRENT_KEY, URL, BODY, now), "body does not match", body=BODY + b" "),
    "empty body signed, body sent": Case(lambda now: sign(CURRENT_KEY, URL, b"", now), "body does not match"),
    "no body claim": Case(forged(body=None), "'body' claim"),
    "no exp claim": Case(forged(exp=None), "'exp' claim"),
    "body claim with padding": Case(forged(body=body_hash(BODY))),
    "body claim without padding": Case(forged(body=body_hash(BODY).rstrip("="))),
    "missing header": Case(lambda now: None, "missing"),
    "empty header": Case(lambda now: "", "missing"),
    "not a JWT": Case(lambda now: "not-a-jwt", "malformed"),
    "alg none": Case(forged(algorithm="none"), "algorithm"),
    "alg HS512 with the right key": Case(forged(algorithm="HS512"), "algorithm"),
    "signature of another token": Case(
        lambda now: (
            sign(CURRENT_KEY, URL, BODY, now).rsplit(".", 1)[0]
            + "."
            + sign(CURRENT_KEY, URL, b"other", now).rsplit(".", 1)[1]
        ),
        "current or the next signing key",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_verify(case: Case):
    now = time.time()
    arguments = {"current_key": CURRENT_KEY, "next_key": NEXT_KEY, "url": URL, "clock_leeway": LEEWAY}
    verifier = SignatureVerifier(**(arguments | case.verifier))
    token = case.token(now)

    if case.rejected is None:
        verified = verifier.verify(token, case.body)
        assert verified["sub"] == URL
        assert verified["iss"] == "Upstash"
    else:
        with pytest.raises(InvalidSignature) as raised:
            verifier.verify(token, case.body)
        message = str(raised.value)
        assert case.rejected in message
        for key in (CURRENT_KEY, NEXT_KEY, FORGED_KEY):
            assert key not in message and key not in repr(raised.value)
        assert raised.value.__cause__ is None


def test_returns_the_claims_of_the_token():
    now = time.time()
    verifier = SignatureVerifier(CURRENT_KEY, NEXT_KEY, URL)

    verified = verifier.verify(sign(CURRENT_KEY, URL, BODY, now), BODY)

    assert verified["iat"] == int(now)
    assert verified["exp"] == int(now) + 300
    assert verified["nbf"] == 0
    assert verified["aud"] == ""
    assert verified["jti"].startswith("jwt_")
    assert verified["body"] == body_hash(BODY)


def test_zero_leeway_rejects_a_future_iat():
    now = time.time()
    verifier = SignatureVerifier(CURRENT_KEY, NEXT_KEY, URL, clock_leeway=0)

    with pytest.raises(InvalidSignature, match="not yet valid"):
        verifier.verify(forged(iat=lambda now: int(now) + 30, exp=lambda now: int(now) + 330)(now), BODY)


def test_claims_errors_are_reported_for_the_key_that_matched():
    """A token signed with the current key but expired says "expired", not "next key mismatch"."""
    now = time.time()
    verifier = SignatureVerifier(CURRENT_KEY, NEXT_KEY, URL)
    token = forged(key=CURRENT_KEY, iat=lambda now: int(now) - 1000, exp=lambda now: int(now) - 700)(now)

    with pytest.raises(InvalidSignature, match="expired"):
        verifier.verify(token, BODY)


def test_body_must_be_raw_bytes():
    verifier = SignatureVerifier(CURRENT_KEY, NEXT_KEY, URL)

    with pytest.raises(TypeError):
        verifier.verify(sign(CURRENT_KEY, URL, BODY), BODY.decode())  # type: ignore[arg-type]


def test_keys_stay_out_of_the_verifier_repr():
    verifier = SignatureVerifier(CURRENT_KEY, NEXT_KEY, URL)

    assert CURRENT_KEY not in repr(verifier)
    assert NEXT_KEY not in repr(verifier)


@pytest.mark.parametrize("arguments", [("", NEXT_KEY, URL), (CURRENT_KEY, NEXT_KEY, "")])
def test_refuses_an_empty_key_or_url(arguments):
    with pytest.raises(ValueError):
        SignatureVerifier(*arguments)
