"""The shape of every error answer: `{"error": "<one line>"}`."""

from __future__ import annotations

from starlette.responses import JSONResponse


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)
