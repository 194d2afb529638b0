"""Nothing: embedq 0.1 created the sample application here, in `public`.

The sample application is now created only by `embedq sample` (and `embedq demo`), in its own
schema `embedq_sample`: `embedq migrate` creates and changes embedq's own objects only. A
database migrated by 0.1 keeps its sample tables (they may hold data); downgrading never drops
them.

Revision ID: 0002
Revises: 0001
"""

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
