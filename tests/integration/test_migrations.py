"""Alembic is the schema's source of truth; the models must never drift from it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared.db.base import Base
from shared.db.migrate import alembic_config, current_revision_is_head, migration_engine
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.support import postgres_database


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = migration_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], f"models differ from migrations: {differences}"
    assert current_revision_is_head(database_url)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_migration_downgrades_and_upgrades_again(backend: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
        else:
            assert POSTGRES_URL is not None
            url = stack.enter_context(postgres_database(POSTGRES_URL))
        config = alembic_config(url)
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        engine = migration_engine(url)
        try:
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        finally:
            engine.dispose()
        command.upgrade(config, "head")
        assert current_revision_is_head(url)
