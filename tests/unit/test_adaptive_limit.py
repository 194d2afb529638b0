import asyncio

import pytest

from embedq.providers.adaptive import AdaptiveLimit, AdaptiveSemaphore

THROTTLED = "throttled"


def fast() -> tuple[str, float]:
    return ("answer", 0.1)


@pytest.mark.parametrize(
    ("start", "maximum", "events", "expected"),
    [
        (4, 16, [fast()] * 4, 5),  # `limit` answers in a row: one more
        (4, 16, [fast()] * 3, 4),
        (4, 16, [fast()] * (4 + 5 + 6), 7),
        (16, 16, [fast()] * 40, 16),  # never above the maximum
        (8, 16, [THROTTLED], 4),  # a 429 halves
        (8, 16, [THROTTLED] * 4, 1),  # down to the minimum, not below
        (1, 16, [THROTTLED], 1),
        (8, 16, [fast(), ("answer", 0.5)], 7),  # 5x slower than the fastest: congestion
        (8, 16, [fast(), ("answer", 0.25)], 8),  # 2.5x: still fine
        (8, 16, [fast(), THROTTLED, fast(), fast(), fast(), fast()], 5),
    ],
)
def test_additive_increase_multiplicative_decrease(start, maximum, events, expected):
    limit = AdaptiveLimit(limit=start, maximum=maximum)
    for event in events:
        if event == THROTTLED:
            limit.on_throttled()
        else:
            limit.on_answer(event[1])
    assert limit.limit == expected


def test_a_provider_that_became_slower_for_good_is_not_congested_forever():
    limit = AdaptiveLimit(limit=8, maximum=8)
    limit.on_answer(0.05)
    for _ in range(400):  # every answer now takes 0.5 s: the floor drifts up to it
        limit.on_answer(0.5)
    assert limit.latency_floor == pytest.approx(0.5, rel=0.35)
    assert limit.limit > 1


async def test_the_semaphore_follows_the_limit():
    limit = AdaptiveLimit(limit=2, maximum=4)
    semaphore = AdaptiveSemaphore(limit)
    entered = 0
    release = asyncio.Event()

    async def work():
        nonlocal entered
        async with semaphore:
            entered += 1
            await release.wait()

    tasks = [asyncio.create_task(work()) for _ in range(4)]
    await asyncio.sleep(0.01)
    assert entered == 2
    limit.limit = 3
    await semaphore.changed()
    await asyncio.sleep(0.01)
    assert entered == 3
    release.set()
    await asyncio.gather(*tasks)
    assert semaphore.in_use == 0
