"""A row's embedding state, read from the real tables as they change."""

from __future__ import annotations

from embedq.listener import Listener
from embedq.rows import RowState, row_status
from embedq.testing import HashEmbedder


async def test_a_row_goes_from_queued_to_current_to_dead(conn, dsn, settings):
    course = await conn.fetchval("INSERT INTO embedq_sample.courses (title) VALUES ('Knife skills') RETURNING id")
    status = await row_status(conn, "course", course)
    assert status.state is RowState.QUEUED and status.job_id is None  # still in the triggers' inbox

    await conn.execute("SELECT embedq.jobs_ingest()")
    status = await row_status(conn, "course", course)
    assert status.state is RowState.QUEUED and status.job_id is not None

    embedder = HashEmbedder()
    await Listener(dsn, embedder, settings).run(drain=True)
    status = await row_status(conn, "course", course)
    assert status.state is RowState.CURRENT and status.chunks == 1 and status.embedded_at is not None

    await conn.execute("UPDATE embedq_sample.courses SET title = 'Knife skills II' WHERE id = $1", course)
    assert (await row_status(conn, "course", course)).state is RowState.QUEUED

    embedder.poison_marker = "II"
    await Listener(dsn, embedder, settings).run(drain=True)
    status = await row_status(conn, "course", course)
    assert status.state is RowState.DEAD
    assert "II" in status.last_error
    assert status.as_json()["state"] == "dead"


async def test_a_row_never_queued_is_missing(conn):
    assert (await row_status(conn, "course", "424242")).state is RowState.MISSING
