"""Job state change events carry ids from the database (GET /v1/events resumes with Last-Event-ID).

Revision ID: 0006
Revises: 0005
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0006_event_ids.sql", *FUNCTION_FILES)


def downgrade() -> None:
    apply_sql("schema/0006_event_ids_down.sql")
