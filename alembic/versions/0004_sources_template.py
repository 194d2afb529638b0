"""Sources carry a template: how a row becomes text is stored with its registration.

Revision ID: 0004
Revises: 0003
"""

from embedq.migrations import FUNCTION_FILES, apply_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql("schema/0004_sources_template.sql", *FUNCTION_FILES)


def downgrade() -> None:
    # register_source goes with the column; revision 0003's signature comes back with a
    # re-applied function file only at head, so below 0004 sources are registered again by
    # upgrading (a downgrade is for tearing the schema down).
    apply_sql("schema/0004_sources_template_down.sql")
