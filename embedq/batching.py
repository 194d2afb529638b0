"""Splitting work into provider calls. Pure functions, tested by tables."""

from __future__ import annotations

from collections.abc import Sequence


def batch_ranges(token_counts: Sequence[int], max_items: int, max_tokens: int) -> list[range]:
    """Consecutive index ranges whose item count and token sum stay within the bounds.

    An item larger than max_tokens on its own still gets a batch of its own (the caller
    chunked it; refusing it here would lose it).
    """
    if max_items < 1 or max_tokens < 1:
        raise ValueError("max_items and max_tokens must be positive")
    ranges: list[range] = []
    start = 0
    tokens = 0
    for index, count in enumerate(token_counts):
        if count < 0:
            raise ValueError(f"token count at {index} is negative")
        full = index - start >= max_items or (index > start and tokens + count > max_tokens)
        if full:
            ranges.append(range(start, index))
            start, tokens = index, 0
        tokens += count
    if start < len(token_counts):
        ranges.append(range(start, len(token_counts)))
    return ranges
