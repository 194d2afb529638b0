"""embedq: keep pgvector embeddings in step with PostgreSQL rows."""

__version__ = "0.1.0"
