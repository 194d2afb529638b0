"""When QStash tries a failed delivery again.

Precedence: a usable `Retry-After` (or `X-RateLimit-Reset*`) in the response, then the
message's `Upstash-Retry-Delay` expression, then the default backoff
`min(86400, e^(2.5 * n))` seconds, n being the number of the coming retry (1 for the first).
Every value is in real (unscaled) seconds; the broker applies its `time_scale`.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

from tests.qstash_server.durations import parse_duration

MAX_DELAY_SECONDS = 86400.0
RETRY_AFTER_HEADERS = (
    "retry-after",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
)


def backoff(retry_number: int) -> float:
    """Seconds before retry number `retry_number` (1 for the first): 12 s, 2m28s, 30m8s, 6h7m, 24h."""
    return min(MAX_DELAY_SECONDS, math.exp(2.5 * retry_number))


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds asked for by one header value (seconds, `6m5s`, or an RFC 1123 date); None if unreadable."""
    value = value.strip()
    try:
        return max(0.0, parse_duration(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def requested_delay(response_headers: Mapping[str, str], now: float) -> float | None:
    """The delay the destination asked for, if any and not beyond the one-day cap."""
    lowered = {name.lower(): value for name, value in response_headers.items()}
    for name in RETRY_AFTER_HEADERS:
        if name in lowered:
            seconds = parse_retry_after(lowered[name], now)
            if seconds is not None and seconds <= MAX_DELAY_SECONDS:
                return seconds
    return None


def next_delay(
    retry_number: int,
    response_headers: Mapping[str, str],
    now: float,
    expression: str | None = None,
) -> float:
    """Seconds to wait before retry number `retry_number` (1 for the first)."""
    requested = requested_delay(response_headers, now)
    if requested is not None:
        return requested
    if expression:
        return min(MAX_DELAY_SECONDS, max(0.0, evaluate_retry_delay(expression, retry_number - 1) / 1000))
    return backoff(retry_number)


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "pow": math.pow,
    "sqrt": math.sqrt,
    "abs": abs,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
    "min": min,
    "max": max,
}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def validate_retry_delay(expression: str) -> None:
    """Raise ValueError unless `expression` is a retry-delay expression QStash would accept."""
    evaluate_retry_delay(expression, 0)


def evaluate_retry_delay(expression: str, retried: int) -> float:
    """Milliseconds given by an `Upstash-Retry-Delay` expression such as `pow(2, retried) * 1000`."""
    try:
        tree = ast.parse(expression, mode="eval")
        return float(_evaluate(tree.body, retried))
    except (SyntaxError, TypeError, ValueError, ZeroDivisionError, OverflowError) as error:
        raise ValueError(f"invalid retry delay expression {expression!r}: {error}") from None


def _evaluate(node: ast.expr, retried: int) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id == "retried":
        return retried
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, retried), _evaluate(node.right, retried))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, retried))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_evaluate(argument, retried) for argument in node.args))
    raise ValueError(f"unsupported element {ast.dump(node)[:40]}")
