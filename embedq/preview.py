"""What a row would be embedded as (`embedq preview TYPE ID`): its text from the source's
registration (template or default layout) and its chunks, built by the very code processing
runs (processing.chunk_row), so what you see is what the provider gets. Read-only."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg

from embedq import content
from embedq.errors import InvalidInput, NotFound
from embedq.processing import chunk_row
from embedq.providers.base import Embedder
from embedq.queries import query
from embedq.settings import Settings


@dataclass(frozen=True)
class Chunk:
    index: int
    content: str
    tokens: int
    content_hash: str


@dataclass(frozen=True)
class Preview:
    content_type: str
    source_id: str
    model: str
    #: the template the text came from (None: the default `Label: value` layout)
    template: str | None
    text: str
    chunks: list[Chunk]

    def as_json(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "source_id": self.source_id,
            "model": self.model,
            "template": self.template,
            "text": self.text,
            "chunks": [
                {"index": c.index, "content": c.content, "tokens": c.tokens, "content_hash": c.content_hash}
                for c in self.chunks
            ],
        }


async def preview_row(
    conn: asyncpg.Connection, embedder: Embedder, settings: Settings, content_type: str, source_id: str
) -> Preview:
    source = await conn.fetchrow(query("sources_get"), content_type)
    if source is None:
        raise InvalidInput(f"unknown content type {content_type!r}")
    rows = await conn.fetch(query("source_rows"), content_type, [str(source_id)])
    if not rows:
        raise NotFound(f"{content_type} {source_id} does not exist in {source['table_name']}")
    values = rows[0]["fields"]

    def build() -> Preview:
        try:
            text = content.build_text(source["fields"], values, source["template"])
            chunks, hashes = chunk_row(source["fields"], source["template"], values, embedder, settings)
        except (ValueError, TypeError, UnicodeError) as exc:
            raise InvalidInput(f"cannot build the text of {content_type} {source_id}: {exc}") from None
        return Preview(
            content_type,
            str(source_id),
            embedder.model,
            source["template"],
            text,
            [Chunk(i, c, embedder.count_tokens(c), h) for i, (c, h) in enumerate(zip(chunks, hashes, strict=True))],
        )

    # the tokenizer may load the model's weights, and a long text takes a while to chunk
    return await asyncio.to_thread(build)
