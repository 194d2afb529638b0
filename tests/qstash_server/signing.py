"""`Upstash-Signature` tokens, made the way QStash makes them.

Server side only, and written without a JWT library on purpose: the webhook verifies with its
own code (PyJWT), so a shared bug cannot make both sides agree on a wrong token.

    token = sign(current_signing_key, "https://example.com/v1/jobs", body)

Tests forge variants with `claims()` + `encode()`: an expired `exp`, a future `iat`, another
`sub`, an unpadded `body`, `algorithm="HS512"` or `"none"`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

ISSUER = "Upstash"
TOKEN_LIFETIME_SECONDS = 300
_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    """base64url without padding, as JWS segments are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def body_hash(body: bytes) -> str:
    """The `body` claim: base64url(sha256(raw body)) WITH `=` padding, as QStash sends it."""
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode("ascii")


def claims(url: str, body: bytes, now: float | None = None) -> dict[str, Any]:
    """The claims QStash signs for one delivery of `body` to `url`."""
    issued_at = int(time.time() if now is None else now)
    return {
        "iss": ISSUER,
        "sub": url,
        "aud": "",
        "exp": issued_at + TOKEN_LIFETIME_SECONDS,
        "nbf": 0,
        "iat": issued_at,
        "jti": f"jwt_{secrets.token_hex(12)}",
        "body": body_hash(body),
    }


def encode(payload: dict[str, Any], key: str, algorithm: str = "HS256") -> str:
    """A compact JWS of `payload`; the HMAC key is the whole `sig_...` string as UTF-8."""
    header = {"alg": algorithm, "typ": "JWT"}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload))
    if algorithm == "none":
        return f"{signing_input}."
    digest = hmac.new(key.encode(), signing_input.encode("ascii"), _DIGESTS[algorithm]).digest()
    return f"{signing_input}.{b64url(digest)}"


def sign(key: str, url: str, body: bytes, now: float | None = None) -> str:
    """The `Upstash-Signature` header value for delivering `body` to `url`."""
    return encode(claims(url, body, now), key)
