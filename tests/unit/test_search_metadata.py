"""What a row's vectors carry for search filters, and `--filter KEY=VALUE` parsing: pure functions."""

from __future__ import annotations

import pytest

from embedq.errors import InvalidInput
from embedq.metadata import filter_values, row_metadata
from embedq.search import parse_filters


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        (None, []),
        ("Baking", ["Baking"]),
        ("", [""]),
        (42, ["42"]),
        (1.5, ["1.5"]),
        (True, ["true"]),
        (False, ["false"]),
        (["bread", None, "beginner"], ["bread", "beginner"]),
        ([1, 2], ["1", "2"]),
        ([], []),
        ({"a": 1}, ['{"a": 1}']),
        ("2024-05-08T10:00:00+00:00", ["2024-05-08T10:00:00+00:00"]),
    ],
)
def test_filterable_values_become_lists_of_text(value, texts):
    assert filter_values(value) == texts


def test_metadata_holds_the_chunk_count_and_only_the_filterable_columns():
    values = {"title": "Sourdough", "category": "Baking", "tenant_id": 7}
    assert row_metadata(3, (), values) == {"chunks": 3}
    assert row_metadata(1, ("category", "tenant_id", "missing"), values) == {
        "chunks": 1,
        "filters": {"category": ["Baking"], "tenant_id": ["7"], "missing": []},
    }


@pytest.mark.parametrize(
    ("pairs", "filters"),
    [
        ([], {}),
        (["category=Baking"], {"category": "Baking"}),
        (["tags=a", "tags=b", "tags=c"], {"tags": ["a", "b", "c"]}),
        (["note=a=b"], {"note": "a=b"}),
        ([" tenant_id =42"], {"tenant_id": "42"}),
        (["empty="], {"empty": ""}),
    ],
)
def test_filter_options_parse_into_search_filters(pairs, filters):
    assert parse_filters(pairs) == filters


@pytest.mark.parametrize("pair", ["category", "=Baking", " =x"])
def test_a_filter_option_without_a_key_is_refused(pair):
    with pytest.raises(InvalidInput, match="not KEY=VALUE"):
        parse_filters([pair])
