"""An index of jobs by row, for a row's embedding state.

Revision ID: 0005
Revises: 0004
"""

from embedq.migrations import apply_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0005_jobs_by_source.sql")


def downgrade() -> None:
    apply_sql("schema/0005_jobs_by_source_down.sql")
