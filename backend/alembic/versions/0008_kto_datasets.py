"""kto datasets: detected_format may be 'kto' (answers with a true/false kto_tag)

Revision ID: 0008_kto_datasets
Revises: 0007_model_runtimes
Create Date: 2026-12-04 23:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_kto_datasets"
down_revision: str | None = "0007_model_runtimes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "detected_format IN ('alpaca', 'sharegpt', 'openai', 'preference', 'text', 'unknown')"
NEW = "detected_format IN ('alpaca', 'sharegpt', 'openai', 'preference', 'kto', 'text', 'unknown')"


def _replace_check(condition: str) -> None:
    """Swap the detected_format CHECK. On SQLite that copies the table (batch mode; the other
    constraints and the index are reflected and kept): the copy keeps AUTOINCREMENT and the id
    high-water mark, since ids name the datasets' folders and are never reused. Foreign keys are
    off meanwhile (app.migrations), so the job links that reference datasets stay."""
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    seq_sql = sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'datasets'")
    high_water = bind.execute(seq_sql).scalar() if sqlite else None
    with op.batch_alter_table(
        "datasets", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_constraint(op.f("ck_datasets_detected_format_valid"), type_="check")
        batch_op.create_check_constraint("detected_format_valid", condition)
    if high_water is not None:
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'datasets'"))
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('datasets', :seq)"),
            {"seq": high_water},
        )


def upgrade() -> None:
    _replace_check(NEW)


def downgrade() -> None:
    # The old schema has no kto: such datasets become unrecognised (their files stay).
    op.execute(
        sa.text(
            "UPDATE datasets SET detected_format = 'unknown', status = 'invalid', "
            "llamafactory = NULL WHERE detected_format = 'kto'"
        )
    )
    _replace_check(OLD)
