"""Run Alembic from code (start-up, tests) with the same config the CLI uses.

Every run goes through `migration_connection`: one transaction and, on SQLite, foreign keys off
until it commits. SQLite changes most of a table (a CHECK constraint, say) only by copying it
(Alembic's batch mode) and dropping the original; with foreign keys on, that drop deletes every
row that references the table through ON DELETE CASCADE. SQLite's own procedure for such changes
is the one followed here: foreign keys off, the change in a transaction, `PRAGMA
foreign_key_check` before the commit, foreign keys back on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from app.config import BACKEND_DIR, REPO_ROOT


class MigrationIntegrityError(RuntimeError):
    """A migration left rows whose foreign keys point nowhere (SQLite); nothing was committed."""


def alembic_config() -> Config:
    ini = REPO_ROOT / "alembic.ini"
    cfg = Config(str(ini)) if ini.exists() else Config()
    cfg.set_main_option("script_location", str(BACKEND_DIR / "alembic"))
    # The app has configured logging already; env.py must not replace it.
    cfg.attributes["configure_logging"] = False
    return cfg


def _set_foreign_keys(connection: Connection, on: bool) -> None:
    # Outside any transaction: SQLite ignores this pragma inside one.
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction for Alembic, committed when the block ends without error
    (on SQLite: with foreign keys off meanwhile, and checked before the commit)."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _set_foreign_keys(connection, False)
        try:
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise MigrationIntegrityError(
                            f"The migration broke {len(broken)} foreign key reference(s), "
                            f"first {tuple(broken[0])}; rolled back"
                        )
        finally:
            if sqlite:
                connection.rollback()  # nothing is left open if the block failed
                _set_foreign_keys(connection, True)


def migrate(engine: Engine, revision: str = "head", *, downgrade: bool = False) -> None:
    """Upgrade (or downgrade) the database of `engine` to `revision`."""
    cfg = alembic_config()
    with migration_connection(engine) as connection:
        cfg.attributes["connection"] = connection
        if downgrade:
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)


def upgrade_head(engine: Engine) -> None:
    """Apply every pending migration on `engine`."""
    migrate(engine, "head")
