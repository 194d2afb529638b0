"""The write path: registered tables' triggers are rebuilt, the inbox keeps keys uncompressed.

Revision ID: 0008
Revises: 0007
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0008_write_path.sql", *FUNCTION_FILES, "schema/0008_write_path_triggers.sql")


def downgrade() -> None:
    apply_sql("schema/0008_write_path_down.sql")
