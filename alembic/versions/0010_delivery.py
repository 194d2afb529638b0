"""Every delivery ends (failed deliveries count, then local processing), dead workers are
noticed (webhooks heartbeat too), dead jobs record their cause, schedules record their runs.

Revision ID: 0010
Revises: 0009
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0010_delivery.sql", *FUNCTION_FILES)


def downgrade() -> None:
    apply_sql("schema/0010_delivery_down.sql")
