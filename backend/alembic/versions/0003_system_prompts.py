"""system prompts: the prompt library (private, shared and built-in templates)

Revision ID: 0003_system_prompts
Revises: 0002_model_configs
Create Date: 2026-11-25 11:30:45.742934+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_system_prompts"
down_revision: str | None = "0002_model_configs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "system_prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("is_shared", sa.Boolean(), nullable=False),
        sa.Column("builtin_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "format IN ('text', 'markdown', 'json', 'yaml')",
            name=op.f("ck_system_prompts_format_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_system_prompts_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_system_prompts")),
        sa.UniqueConstraint("builtin_key", name=op.f("uq_system_prompts_builtin_key")),
    )
    with op.batch_alter_table("system_prompts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_system_prompts_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_system_prompts_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("system_prompts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_system_prompts_owner_id"))
        batch_op.drop_index(batch_op.f("ix_system_prompts_category"))

    op.drop_table("system_prompts")
