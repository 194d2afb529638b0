"""What QStash is told about a delivery, from what processing made of it (a table)."""

from __future__ import annotations

import pytest

from embedq.errors import PermanentError, RetryableError
from embedq.processing import Outcome
from embedq.webhook.delivery import Answer, delivery_answer, error_answer

RETRY = {"Retry-After": "5"}
GIVE_UP = {"Upstash-NonRetryable-Error": "true"}


@pytest.mark.parametrize(
    ("outcome", "held_back", "expected"),
    [
        # nothing taken: every job already done, dead, or in hand of a duplicate delivery
        (None, [], Answer(200)),
        (Outcome(done=[1, 2]), [], Answer(200)),
        (Outcome(lost=[1]), [], Answer(200)),  # the claim went elsewhere: that worker ends it
        # transient: QStash redelivers, after the longest wait a provider asked for
        (Outcome(failed=[1]), [], Answer(503)),
        (Outcome(failed=[1], retry_after=2.1), [], Answer(503, {"Retry-After": "3"})),
        (Outcome(done=[1], failed=[2], dead=[3], retry_after=7), [], Answer(503, {"Retry-After": "7"})),
        (Outcome(failed=[1], retry_after=30), [4], Answer(503, {"Retry-After": "30"})),
        # held back behind another job of their row: they must be delivered again
        (None, [4], Answer(503, RETRY)),
        (Outcome(done=[1]), [4], Answer(503, RETRY)),
        (Outcome(dead=[1]), [4], Answer(503, RETRY)),
        # permanent: retrying cannot help, the jobs are dead
        (Outcome(dead=[1]), [], Answer(489, GIVE_UP)),
        (Outcome(done=[1], dead=[2]), [], Answer(489, GIVE_UP)),
    ],
)
def test_delivery_answer(outcome, held_back, expected):
    assert delivery_answer(outcome, held_back) == expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RetryableError("deadlock detected", retry_after=1), Answer(503, {"Retry-After": "1"})),
        (RetryableError("connection reset"), Answer(503)),
        (PermanentError("wrong dimensions"), Answer(489, GIVE_UP)),
    ],
)
def test_error_answer_follows_the_error_class(error, expected):
    assert error_answer(error) == expected
