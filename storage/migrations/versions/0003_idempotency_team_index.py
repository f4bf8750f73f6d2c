"""drop idempotency_keys' index on team_id: the unique (team_id, key) already leads with it

Every submit with an Idempotency-Key inserts a row, and each index is one more B-tree
insert; lookups by team (and the retention sweep, by created_at) are served without it.

Revision ID: 0003_idem_team_index
Revises: 0002_base_link
"""

from alembic import op


revision = "0003_idem_team_index"
down_revision = "0002_base_link"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_team_id"))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_team_id"), ["team_id"], unique=False)
