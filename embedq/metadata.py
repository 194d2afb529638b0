"""What a row's vectors carry besides the vector: `embeddings.metadata`, one object per row, the
same on each of its chunks.

    {"chunks": 3, "filters": {"category": ["Programming"], "tenant_id": ["42"]}}

`filters` holds the row's values of the columns its source registers as filterable, each as a
list of text (an array column gives several, NULL none), so that one jsonb containment test
(`metadata @> '{"filters": {"tenant_id": ["42"]}}'`, what `embedq._search_filter` builds from
a search's filters) serves every filter and the GIN index on metadata. Values are compared as
text: 42, "42" and [42] all find a row whose tenant_id is 42.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def row_metadata(chunk_count: int, filters: Sequence[str], values: Mapping[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"chunks": chunk_count}
    if filters:
        metadata["filters"] = {name: filter_values(values.get(name)) for name in filters}
    return metadata


def filter_values(value: Any) -> list[str]:
    """A filterable column's value (as decoded from jsonb) as the texts a filter compares with."""
    if value is None:
        return []
    if isinstance(value, list):
        return [_as_text(item) for item in value if item is not None]
    return [_as_text(value)]


def _as_text(value: Any) -> str:
    # as PostgreSQL prints a jsonb scalar (`value #>> '{}'`), which is how filters are compared
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)
