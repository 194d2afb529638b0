"""Duration strings as QStash reads them: `10s`, `1d10h30m`, `6m5s`, `1.5h`, `300ms`, or bare seconds."""

from __future__ import annotations

import re

_SECONDS_PER_UNIT = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# longest units first, so that `ms` is not read as `m` followed by garbage
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h|d)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError on anything else (negative values included)."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    total = 0.0
    position = 0
    for part in _PART.finditer(text):
        if part.start() != position:
            break
        total += float(part.group(1)) * _SECONDS_PER_UNIT[part.group(2)]
        position = part.end()
    if position == 0 or position != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return total
