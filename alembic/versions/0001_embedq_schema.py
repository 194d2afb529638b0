"""embedq schema: outbox, sources, embeddings, models, search log, and their functions.

Revision ID: 0001
Revises:
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0001_embedq.sql", *FUNCTION_FILES)


def downgrade() -> None:
    apply_sql("schema/0001_embedq_down.sql")
