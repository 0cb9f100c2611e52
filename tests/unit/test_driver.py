"""What a prepared statement may be, to run on the driver compiled once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import bindparam, create_mock_engine, select
from sqlalchemy.engine import Dialect

from shared.kit.db.driver import DriverStatement
from shared.kit.db.repository import JobRows, Repository
from shared.kit.db.statements import prepared
from shared.verifications.models import Verification

POSTGRESQL: Dialect = create_mock_engine("postgresql+asyncpg://", executor=print).dialect


def test_a_prepared_statement_that_would_expand_a_list_is_refused() -> None:
    table = Verification.__table__
    statement = select(table.c.id).where(table.c.status.in_(["queued", "pending"]))
    with pytest.raises(ValueError, match="cannot expand"):
        DriverStatement.compile(statement, POSTGRESQL)


def test_a_prepared_statement_with_a_computed_value_is_refused() -> None:
    table = Verification.__table__
    statement = select(table.c.id).where(table.c.user_id == bindparam("who", callable_=str))
    with pytest.raises(ValueError, match="not computed"):
        DriverStatement.compile(statement, POSTGRESQL)


def _repository_classes() -> list[type[Repository]]:
    found: list[type[Repository]] = []
    pending: list[type[Repository]] = [Repository]
    while pending:
        for subclass in pending.pop().__subclasses__():
            pending.append(subclass)
            found.append(subclass)
    return found


def _prepared_of(repository: type[Repository]) -> dict[str, Any]:
    names = {
        name
        for klass in repository.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, prepared)
    }
    return {name: getattr(repository, name) for name in sorted(names)}


def test_every_prepared_statement_of_every_repository_compiles_for_the_driver() -> None:
    import shared.unit_of_work  # noqa: F401  # every repository, imported

    compiled = 0
    for repository in _repository_classes():
        if issubclass(repository, JobRows) and not hasattr(repository, "model"):
            continue  # generic (SendRows): its statements are built on its subclasses
        for name, built in _prepared_of(repository).items():
            for statement in built.values() if isinstance(built, dict) else [built]:
                driver_statement = DriverStatement.compile(statement, POSTGRESQL)
                assert "POSTCOMPILE" not in driver_statement.sql, f"{repository.__name__}.{name}"
                compiled += 1
    assert compiled >= 30, compiled
