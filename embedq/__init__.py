"""embedq: keep pgvector embeddings in step with PostgreSQL rows.

import embedq

client = embedq.Client()          # embedq.AsyncClient() in asyncio code: the same methods
client.migrate()
hits = client.search("how do I bake bread", k=5)
"""

from embedq.client import AsyncClient, Client, Hit, Migration
from embedq.rows import RowState, RowStatus

#: the one place the version is written (pyproject.toml reads it from here)
__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "Hit", "Migration", "RowState", "RowStatus", "__version__"]
