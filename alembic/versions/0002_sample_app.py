"""The sample application tables, registered as sources (skipped with EMBEDQ_SAMPLE_SCHEMA=0).

Revision ID: 0002
Revises: 0001
"""

from embedq.migrations import apply_sql, sample_schema_wanted

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sample_schema_wanted():
        apply_sql("schema/0002_sample_app.sql")


def downgrade() -> None:
    apply_sql("schema/0002_sample_app_down.sql")
