"""model versions link to their base: base_version_id, and artifact (model or adapter)

A causal-LM fine-tune stores a LoRA adapter, which loads only over its base model:
the version says so (``artifact``) and, when the base was a model of the team, which
version that was (``base_version_id``; allow-listed bases stay named in ``base_model``).

Revision ID: 0002_base_link
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = "0002_base_link"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("base_version_id", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("artifact", sa.String(length=16), nullable=False, server_default="model")
        )


def downgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("artifact")
        batch_op.drop_column("base_version_id")
