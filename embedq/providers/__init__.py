"""Embedding providers behind one narrow protocol."""

from __future__ import annotations

from embedq.providers.base import Embedder
from embedq.settings import Settings

__all__ = ["Embedder", "create_embedder"]


def create_embedder(settings: Settings) -> Embedder:
    if settings.provider == "openai":
        from embedq.providers.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    from embedq.providers.local import LocalEmbedder

    return LocalEmbedder()
