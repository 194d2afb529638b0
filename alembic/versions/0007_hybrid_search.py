"""Hybrid search: chunk text indexed for keywords (also for languages written without spaces),
filterable columns copied into the vectors' metadata, searches logged from Python and SQL.

Revision ID: 0007
Revises: 0005
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0007_hybrid_search.sql", *FUNCTION_FILES)


def downgrade() -> None:
    # The previous signatures of search and register_source come back with a re-applied function
    # file only at head (as for 0004): a downgrade is for tearing the schema down.
    apply_sql("schema/0007_hybrid_search_down.sql")
