"""embedq: keep pgvector embeddings in step with PostgreSQL rows.

import embedq

client = embedq.Client()          # embedq.AsyncClient() in asyncio code: the same methods
client.migrate()
hits = client.search("how do I bake bread", k=5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedq.client import AsyncClient, Client, Hit, Migration
    from embedq.rows import RowState, RowStatus

#: the one place the version is written (pyproject.toml reads it from here)
__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "Hit", "Migration", "RowState", "RowStatus", "__version__"]


def __getattr__(name: str) -> Any:
    # Deferred: every `import embedq.<module>` runs this file first, and the API brings asyncpg,
    # numpy and the providers (about half a second); the container's health check and
    # `embedq --version` need none of them.
    if name in ("AsyncClient", "Client", "Hit", "Migration"):
        from embedq import client

        return getattr(client, name)
    if name in ("RowState", "RowStatus"):
        from embedq import rows

        return getattr(rows, name)
    raise AttributeError(f"module 'embedq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
