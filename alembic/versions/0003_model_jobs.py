"""Jobs carry a model: a second model is filled side by side with the active one.

Revision ID: 0003
Revises: 0002
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0003_model_jobs.sql", *FUNCTION_FILES)


def downgrade() -> None:
    # Function files are kept at head's version only, so below 0003 the job functions are
    # gone: a downgrade is for tearing the schema down, not for running an older embedq.
    apply_sql("schema/0003_model_jobs_down.sql")
