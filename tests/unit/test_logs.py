"""Log lines: structure from `extra` as key=value or JSON fields, nothing else."""

from __future__ import annotations

import json
import logging

from embedq.logs import HumanFormatter, JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("embedq.listener", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_human_lines_carry_the_extra_fields_as_key_value():
    line = HumanFormatter().format(record("jobs claimed", action="claim", job_ids=list(range(12))))
    assert line.endswith("INFO    embedq.listener: jobs claimed action=claim job_ids=[0,1,2,3,4,5,6,7,8,9,...+2]")


def test_json_lines_carry_the_extra_fields():
    payload = json.loads(JsonFormatter().format(record("job done", action="done", job_id=7)))
    assert {k: payload[k] for k in ("level", "logger", "message", "action", "job_id")} == {
        "level": "info",
        "logger": "embedq.listener",
        "message": "job done",
        "action": "done",
        "job_id": 7,
    }


def test_uvicorns_coloured_copy_of_its_message_is_left_out():
    coloured = record("Uvicorn running on http://127.0.0.1:8000", color_message="Uvicorn running on \x1b[1m%s\x1b[0m")
    assert "color_message" not in HumanFormatter().format(coloured)
    assert "color_message" not in json.loads(JsonFormatter().format(coloured))
