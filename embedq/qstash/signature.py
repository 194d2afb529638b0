"""Verify `Upstash-Signature` on the raw request bytes, before anything parses the body.

    verifier = SignatureVerifier(current_key, next_key, url=settings.webhook_url)
    claims = verifier.verify(request.headers.get("upstash-signature"), await request.body())

The token is a JWT (HS256 only) keyed with the whole `sig_...` string. It is tried with the
current key, then the next one (key rotation); only a token whose HMAC matches neither key is
reported as such, otherwise the reason is the first claim that is wrong: `iss` must be
"Upstash", `sub` the configured public URL exactly (a proxy in front changes scheme and host,
so the request's own URL proves nothing), `exp`/`nbf`/`iat` are checked with `clock_leeway`
seconds of tolerance, and `body` must be base64url(sha256(raw body)), padding ignored.

Written on PyJWT rather than `qstash.Receiver`, which ignores its clock tolerance, rejects a
slightly future `iat`, cannot take bytes, and reports every failure as the next key's.
Messages of `InvalidSignature` never contain the keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import jwt

ISSUER = "Upstash"
ALGORITHM = "HS256"
DEFAULT_CLOCK_LEEWAY_SECONDS = 60.0
REQUIRED_CLAIMS = ("iss", "sub", "exp", "nbf", "iat", "body")


class InvalidSignature(Exception):
    """The request is not a genuine, current QStash delivery for this URL; the message says why."""


class SignatureVerifier:
    def __init__(
        self,
        current_key: str,
        next_key: str | None,
        url: str,
        clock_leeway: float = DEFAULT_CLOCK_LEEWAY_SECONDS,
    ) -> None:
        if not current_key:
            raise ValueError("the current signing key must not be empty")
        if not url:
            raise ValueError("the public URL the signature must name (sub) must not be empty")
        self._keys = tuple(key for key in (current_key, next_key) if key)
        self.url = url
        self.clock_leeway = clock_leeway

    def __repr__(self) -> str:
        return f"SignatureVerifier(url={self.url!r}, keys={len(self._keys)}, clock_leeway={self.clock_leeway})"

    def verify(self, signature: str | None, body: bytes) -> dict[str, Any]:
        """The token's claims if `signature` is valid for `body`; raises InvalidSignature otherwise."""
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError("verify() takes the raw body bytes, before any decoding or parsing")
        if not signature:
            raise InvalidSignature("missing Upstash-Signature header")
        try:
            header = jwt.get_unverified_header(signature)
        except jwt.PyJWTError:
            raise InvalidSignature("malformed signature: not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidSignature(f"unsupported signature algorithm {header.get('alg')!r}: only HS256 is accepted")
        for key in self._keys:
            try:
                claims = jwt.decode(
                    signature,
                    key,
                    algorithms=[ALGORITHM],
                    issuer=ISSUER,
                    leeway=self.clock_leeway,
                    options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise InvalidSignature("signature expired (exp)") from None
            except jwt.ImmatureSignatureError as error:
                raise InvalidSignature(f"signature not yet valid: {error}") from None
            except jwt.MissingRequiredClaimError as error:
                raise InvalidSignature(f"signature lacks the {error.claim!r} claim") from None
            except jwt.InvalidIssuerError:
                raise InvalidSignature(f"signature not issued by {ISSUER} (iss)") from None
            except jwt.PyJWTError as error:
                raise InvalidSignature(f"invalid signature: {error}") from None
            self._check_claims(claims, bytes(body))
            return claims
        raise InvalidSignature("signature does not match the current or the next signing key")

    def _check_claims(self, claims: dict[str, Any], body: bytes) -> None:
        if claims["sub"] != self.url:
            raise InvalidSignature(f"signature is for {claims['sub']!r}, not for {self.url!r} (sub)")
        claimed = claims["body"]
        if not isinstance(claimed, str):
            raise InvalidSignature("body claim is not a string")
        expected = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
        if not hmac.compare_digest(claimed.rstrip("=").encode(), expected):
            raise InvalidSignature("body does not match the signed body hash (body)")


def sign(key: str, url: str, body: bytes, *, now: float | None = None, lifetime: float = 300) -> str:
    """A token as QStash makes it, for `embedq doctor`: it signs a delivery itself to learn whether
    the webhook accepts this side's keys and URL before it asks QStash for a round trip."""
    issued_at = int(time.time() if now is None else now)
    claims = {
        "iss": ISSUER,
        "sub": url,
        "aud": "",
        "iat": issued_at,
        "nbf": 0,
        "exp": issued_at + int(lifetime),
        "jti": f"jwt_{secrets.token_hex(8)}",
        "body": base64.urlsafe_b64encode(hashlib.sha256(body).digest()).decode("ascii"),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)
