"""Claims by priority tier: jobs_claim takes a range of priorities.

Revision ID: 0009
Revises: 0007
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0009_claim_by_priority.sql", *FUNCTION_FILES)


def downgrade() -> None:
    apply_sql("schema/0009_claim_by_priority_down.sql")
