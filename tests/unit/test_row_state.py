import pytest

from embedq.jobs import JobStatus
from embedq.rows import RowState, row_state


@pytest.mark.parametrize(
    ("in_inbox", "job_status", "chunks", "state"),
    [
        (False, None, 0, RowState.MISSING),
        (True, None, 0, RowState.QUEUED),
        (False, JobStatus.PENDING, 0, RowState.QUEUED),
        (False, JobStatus.FAILED, 2, RowState.FAILED),
        (False, JobStatus.PROCESSING, 2, RowState.PROCESSING),
        (False, JobStatus.DISPATCHED, 0, RowState.PROCESSING),
        (False, JobStatus.DONE, 3, RowState.CURRENT),
        (False, JobStatus.DONE, 0, RowState.MISSING),  # a row whose text is empty, or deleted
        (True, JobStatus.DONE, 3, RowState.QUEUED),  # edited again: the change waits in the inbox
        (False, JobStatus.DEAD, 3, RowState.DEAD),  # stale vectors do not make it current
        (True, JobStatus.DEAD, 3, RowState.QUEUED),
        (True, JobStatus.PROCESSING, 3, RowState.PROCESSING),
    ],
)
def test_row_state(in_inbox, job_status, chunks, state):
    assert row_state(in_inbox=in_inbox, job_status=job_status, chunks=chunks) is state
