"""Run Alembic from code (start-up, tests) with the same config the CLI uses."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from app.config import BACKEND_DIR, REPO_ROOT


def alembic_config() -> Config:
    ini = REPO_ROOT / "alembic.ini"
    cfg = Config(str(ini)) if ini.exists() else Config()
    cfg.set_main_option("script_location", str(BACKEND_DIR / "alembic"))
    # The app has configured logging already; env.py must not replace it.
    cfg.attributes["configure_logging"] = False
    return cfg


def upgrade_head(engine: Engine) -> None:
    """Apply every pending migration on `engine`."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
