"""Who may call what, decided in one place: a Starlette authentication backend grants scopes to
each request, and every protected route declares the scope it needs with `@requires(...)`.

- "read" (GET /v1/status, /v1/history, /v1/search, /v1/events, /v1/rows/..., /metrics): everyone while
  EMBEDQ_API_TOKEN is unset; once it is set, that token or the admin token.
- "admin" (GET / the dashboard, GET /v1/jobs, POST /v1/jobs/{id}/replay): the admin token;
  nobody while EMBEDQ_ADMIN_TOKEN is unset.
- The QStash routes need no scope: the signature over their body is their proof. /healthz is open.

A token comes as `Authorization: Bearer <token>`. Only GET / and GET /v1/events also take it
as `?token=`: a link opens the dashboard, and a browser's EventSource cannot send headers. A
route that changes state never does, so a cross-site form cannot reach it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from embedq.settings import Settings
from embedq.webhook.responses import error

READ = "read"
ADMIN = "admin"
#: (method, path) of the routes that also take the token from the query string
QUERY_TOKEN_ROUTES = frozenset({("GET", "/"), ("GET", "/v1/events")})


def same_token(given: str, expected: str | None) -> bool:
    """Constant time: the answer's timing tells nothing about how much of the token was right."""
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def scopes_for(given: str | None, *, api_token: str | None, admin_token: str | None) -> set[str]:
    scopes = set()
    # compare with both tokens whatever the first answer, so the timing does not say which matched
    is_admin = given is not None and same_token(given, admin_token)
    is_reader = given is not None and same_token(given, api_token)
    if api_token is None or is_reader or is_admin:
        scopes.add(READ)
    if is_admin:
        scopes.add(ADMIN)
    return scopes


def bearer_token(conn: HTTPConnection) -> str | None:
    scheme, _, credentials = conn.headers.get("authorization", "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Caller(BaseUser):
    """Whoever sent the request; `token_given` tells a missing token from a wrong one."""

    token_given: bool

    @property
    def is_authenticated(self) -> bool:
        return self.token_given

    @property
    def display_name(self) -> str:
        return "token holder" if self.token_given else ""

    @property
    def identity(self) -> str:
        return ""


class TokenBackend(AuthenticationBackend):
    def __init__(self, settings: Settings) -> None:
        self.api_token = settings.api_token
        self.admin_token = settings.admin_token

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser]:
        given = bearer_token(conn)
        if given is None and (conn.scope.get("method"), conn.scope["path"]) in QUERY_TOKEN_ROUTES:
            given = conn.query_params.get("token") or None
        scopes = scopes_for(given, api_token=self.api_token, admin_token=self.admin_token)
        return AuthCredentials(sorted(scopes)), Caller(token_given=given is not None)

    def read_denied(self, request: Request, exc: Exception) -> Response:
        """`@requires(READ, status_code=401)` answers this."""
        return error(401, "this route needs Authorization: Bearer <EMBEDQ_API_TOKEN>", **{"WWW-Authenticate": "Bearer"})

    def admin_denied(self, request: Request, exc: Exception) -> Response:
        """`@requires(ADMIN)` (status 403) answers this."""
        if self.admin_token is None:
            return error(403, "the admin routes are disabled: set EMBEDQ_ADMIN_TOKEN to enable them")
        if not request.user.token_given:
            return error(
                403,
                "admin token required: open /?token=<EMBEDQ_ADMIN_TOKEN>, "
                "or send Authorization: Bearer <EMBEDQ_ADMIN_TOKEN>",
            )
        return error(403, "wrong admin token")
