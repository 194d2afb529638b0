import pytest

from embedq.batching import batch_ranges


def spans(ranges: list[range]) -> list[tuple[int, int]]:
    return [(r.start, r.stop) for r in ranges]


@pytest.mark.parametrize(
    ("token_counts", "max_items", "max_tokens", "expected"),
    [
        pytest.param([], 3, 10, [], id="empty"),
        pytest.param([5], 3, 10, [(0, 1)], id="one item"),
        pytest.param([1, 1, 1], 3, 10, [(0, 3)], id="count fits exactly"),
        pytest.param([4, 6], 3, 10, [(0, 2)], id="tokens fit exactly"),
        pytest.param([1, 1, 1, 1, 1, 1, 1], 3, 100, [(0, 3), (3, 6), (6, 7)], id="count bound"),
        pytest.param([4, 4, 4, 4], 10, 10, [(0, 2), (2, 4)], id="token bound"),
        pytest.param([6, 5, 5, 9, 1], 10, 10, [(0, 1), (1, 3), (3, 5)], id="token bound, uneven"),
        pytest.param([2, 50, 2], 10, 10, [(0, 1), (1, 2), (2, 3)], id="oversized item alone"),
        pytest.param([50], 10, 10, [(0, 1)], id="oversized only item"),
        pytest.param([50, 60], 10, 10, [(0, 1), (1, 2)], id="oversized items each alone"),
        pytest.param([1, 1, 9, 2], 2, 10, [(0, 2), (2, 3), (3, 4)], id="both bounds"),
        pytest.param([0, 0, 0, 0], 2, 1, [(0, 2), (2, 4)], id="zero-token items"),
        pytest.param([3] * 5, 1, 100, [(i, i + 1) for i in range(5)], id="one item per batch"),
    ],
)
def test_batch_ranges(token_counts, max_items, max_tokens, expected):
    assert spans(batch_ranges(token_counts, max_items, max_tokens)) == expected


@pytest.mark.parametrize(
    ("token_counts", "max_items", "max_tokens"),
    [
        pytest.param([1], 0, 10, id="zero max_items"),
        pytest.param([1], -1, 10, id="negative max_items"),
        pytest.param([1], 3, 0, id="zero max_tokens"),
        pytest.param([1], 3, -5, id="negative max_tokens"),
        pytest.param([1, -1], 3, 10, id="negative token count"),
    ],
)
def test_batch_ranges_rejects_invalid_arguments(token_counts, max_items, max_tokens):
    with pytest.raises(ValueError):
        batch_ranges(token_counts, max_items, max_tokens)


@pytest.mark.parametrize("max_items", [1, 2, 7, 2048])
@pytest.mark.parametrize("max_tokens", [1, 10, 300_000])
def test_batch_ranges_cover_every_item_once_within_bounds(max_items, max_tokens):
    token_counts = [(i * 7919) % 23 for i in range(500)]
    ranges = batch_ranges(token_counts, max_items, max_tokens)
    assert [i for r in ranges for i in r] == list(range(500))
    for r in ranges:
        assert 1 <= len(r) <= max_items
        assert len(r) == 1 or sum(token_counts[i] for i in r) <= max_tokens
