"""The last hour minute by minute (GET /v1/history, the dashboard's charts), from embedq.jobs:
queue depth and write -> vector latency by priority."""

from __future__ import annotations

from datetime import datetime, timedelta

from embedq.history import read_history

# (priority, status, written, ended, last_error): minutes and seconds before the current minute
# started (negative: into it); ended None while the job has not ended
JOBS = [
    (9, "pending", (90, 0), None, None),  # queued before the hour: counted from its first minute
    (9, "pending", (20, -10), None, None),  # queued 20 minutes ago, 10 s into that minute
    (9, "failed", (5, -30), None, "provider busy"),  # will be retried: still queued
    (2, "done", (30, -5), (30, -35), None),  # 30 s from write to vector, within one minute
    (2, "done", (12, -50), (11, -20), None),  # 30 s, across a minute's end: queued at its end
    (2, "done", (12, -40), (11, -40), None),  # 60 s
    (2, "done", (12, -20), (11, -30), "superseded by pending job 7"),  # no vectors written
    (4, "dead", (40, -1), (39, -1), "cancelled by operator"),
    (4, "done", (180, 0), (120, 0), None),  # ended before the hour: not read at all
]


async def insert_jobs(conn) -> datetime:
    start = await conn.fetchval("SELECT date_trunc('minute', now())")
    for n, (priority, status, written, ended, error) in enumerate(JOBS):

        def at(offset: tuple[int, int]):
            return start - timedelta(minutes=offset[0], seconds=offset[1])

        await conn.execute(
            "INSERT INTO embedq.jobs (content_type, source_id, priority, status, created_at, run_after, "
            "finished_at, last_error) VALUES ('course', $1, $2, $3::embedq.job_status, $4, $4, $5, $6)",
            str(n),
            priority,
            status,
            at(written),
            None if ended is None else at(ended),
            error,
        )
    return start


async def test_depth_and_latency_by_priority_minute_by_minute(conn):
    start = await insert_jobs(conn)

    history = await read_history(conn)

    assert len(history.minutes) == 60 and history.minutes == sorted(history.minutes)
    assert history.minutes[-1] - history.minutes[0] == timedelta(minutes=59)
    assert history.minutes[-1] >= start  # the minute may have turned since the rows were written

    def minute(ago: int) -> int:
        return history.minutes.index(start - timedelta(minutes=ago))

    assert sorted(history.depth) == [2, 4, 9]
    nine = history.depth[9]
    assert nine[0] == 1 and nine[minute(21)] == 1 and nine[minute(20)] == 2 and nine[minute(5)] == 3
    assert nine[-1] == 3
    assert history.depth[2][minute(12)] == 3  # three written in that minute, none ended by its end
    assert history.depth[2][minute(11)] == 0 and history.depth[2][minute(30)] == 0
    assert history.depth[4][minute(40)] == 1 and history.depth[4][minute(39)] == 0
    assert sum(history.depth[2]) == 3

    assert sorted(history.latency) == [2]  # dead and superseded jobs made no vectors
    two = history.latency[2]
    assert (two.jobs[minute(30)], two.p50[minute(30)], two.p99[minute(30)]) == (1, 30.0, 30.0)
    assert two.jobs[minute(11)] == 2 and two.p50[minute(11)] == 45.0
    assert two.p99[minute(11)] is not None and 59 < two.p99[minute(11)] < 60
    assert sum(two.jobs) == 3 and two.p50[minute(20)] is None

    as_json = history.as_json()
    assert set(as_json) == {"minutes", "depth", "latency"}
    assert as_json["latency"]["2"]["p50"][minute(30)] == 30.0 and len(as_json["depth"]["9"]) == 60


async def test_an_empty_outbox_has_the_hours_minutes_and_no_series(conn):
    history = await read_history(conn)
    assert len(history.minutes) == 60 and history.depth == {} and history.latency == {}
