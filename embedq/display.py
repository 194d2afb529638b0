"""What the command line prints: tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from embedq.search import Hit

SNIPPET_CHARACTERS = 110


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def hits_table(title: str, hits: Sequence[Hit]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("score", justify="right")
    table.add_column("type")
    table.add_column("id", justify="right")
    table.add_column("content")
    for hit in hits:
        snippet = " ".join(hit.content.split())
        ellipsis = "..." if len(snippet) > SNIPPET_CHARACTERS else ""
        table.add_row(f"{hit.similarity:.3f}", hit.content_type, hit.source_id, snippet[:SNIPPET_CHARACTERS] + ellipsis)
    return table
