"""What a QStash delivery is answered, as a pure function of what processing made of it.

QStash reads only the status code and two headers: any 2xx ends the message; anything else is
redelivered (after Retry-After when given); 489 with `Upstash-NonRetryable-Error: true` stops
the retries at once. Whether a failure is worth retrying is decided once, where the error is
raised (embedq.errors: RetryableError or PermanentError); processing records the jobs as
`failed` or `dead` accordingly, and the answer follows from that:

- some jobs failed transiently: 503, with the longest Retry-After a provider asked for;
- some jobs were held back (another job of their row was in progress): 503, Retry-After 5 s,
  so QStash brings them again instead of leaving them `dispatched` until the dispatch timeout;
- some jobs died (a permanent error, or out of attempts), none to retry: 489;
- otherwise (done, already done, or being done by a duplicate delivery): 200.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from embedq.errors import ProcessingError
from embedq.processing import Outcome

NON_RETRYABLE = 489
HELD_BACK_RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


def retry_later(retry_after: float | None) -> Answer:
    return Answer(503, {"Retry-After": str(math.ceil(retry_after))} if retry_after else {})


def give_up() -> Answer:
    return Answer(NON_RETRYABLE, {"Upstash-NonRetryable-Error": "true"})


def delivery_answer(outcome: Outcome | None, held_back: Sequence[int] = ()) -> Answer:
    """outcome: processing's, or None when no job of the delivery was taken; held_back: the
    delivered jobs still waiting for their turn."""
    if outcome is not None and outcome.failed:
        return retry_later(outcome.retry_after)
    if held_back:
        return retry_later(HELD_BACK_RETRY_AFTER_SECONDS)
    if outcome is not None and outcome.dead:
        return give_up()
    return Answer(200)


def error_answer(exc: ProcessingError) -> Answer:
    """A delivery that failed before processing could record an outcome."""
    return retry_later(exc.retry_after) if exc.retryable else give_up()
