"""Prepared statements: built once per repository class, with typed parameters, compiled once
for the driver (``driver``); and the entities built from the rows they return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import CTE, BindParameter, Table, Uuid, bindparam, cast, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import class_mapper
from sqlalchemy.sql import Executable, Select
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from shared.errors import AttemptError
from shared.kit.db.base import UTCDateTime
from shared.kit.db.driver import DriverStatement

T = TypeVar("T")
S = TypeVar("S", bound=Executable)
# A moment in a statement: a datetime, or a parameter of a prepared statement.
When = datetime | BindParameter[datetime]

MESSAGE_LIMIT = 300


# The parameters of the prepared statements below, typed: their values go through the same
# conversions (UTC datetimes on SQLite, UUIDs as hex) as the columns'.
ROW_ID = bindparam("row_id", type_=Uuid())


TENANT_ID = bindparam("tenant_id", type_=Uuid())


TOKEN = bindparam("token", type_=Uuid())


NOW = bindparam("now", type_=UTCDateTime())


UNTIL = bindparam("until", type_=UTCDateTime())


ERROR: dict[str, BindParameter[Any]] = {
    "error_code": bindparam("error_code"),
    "error_message": bindparam("error_message"),
    "provider_error_code": bindparam("provider_error_code"),
}


Prepared = TypeVar("Prepared")


class prepared(Generic[Prepared]):
    """A statement a repository class builds once, on first use, and runs with parameters:
    the work of building it is not redone per call, and on PostgreSQL it runs on the driver
    (``shared.kit.db.driver``), compiled once."""

    def __init__(self, build: Callable[[Any], Prepared]) -> None:
        self._build = build
        self._by_class: dict[type, Prepared] = {}

    def __get__(self, instance: object, owner: type) -> Prepared:
        statement = self._by_class.get(owner)
        if statement is None:
            statement = self._by_class[owner] = self._build(owner)
            # One statement, or a few of a kind by key (a move's UPDATE per move).
            for each in statement.values() if isinstance(statement, Mapping) else (statement,):
                _PREPARED[id(each)] = _Compilations(each)
        return statement


class _Compilations:
    """A prepared statement and what it compiled to for the driver, once per dialect."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement  # held: its id stays its own
        self._by_dialect: dict[str, DriverStatement] = {}

    def for_dialect(self, dialect: Dialect) -> DriverStatement:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            compiled = self._by_dialect[dialect.name] = DriverStatement.compile(
                self.statement, dialect
            )
        return compiled


_PREPARED: dict[int, _Compilations] = {}


def values_of(table: Table) -> dict[str, BindParameter[Any]]:
    """A parameter for each of the table's columns, named and typed after it: the VALUES of a
    prepared INSERT of whole rows."""
    return {column.key: bindparam(column.key, type_=column.type) for column in table.columns}


def row_values(row: object) -> dict[str, Any]:
    """A mapped row's column values by key: the values of a prepared INSERT of it."""
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}  # type: ignore[attr-defined]  # mapped classes have one


def appended_to(
    write: ReturningInsert[Any] | ReturningUpdate[Any],
    table: Table,
    values: Mapping[str, BindParameter[Any]],
) -> tuple[CTE, CTE]:
    """``write`` as a WITH's ``written``, and its ``appended``: a row of ``table`` with
    ``values`` for each row ``write`` returns — none if it changed nothing. For one statement
    that makes a change and appends its record (PostgreSQL only: SQLite's WITH takes no write).
    The values are cast to their columns' types: in a SELECT's list a parameter has no column to
    take its type from."""
    written = write.cte("written")
    selected = select(
        *(cast(value, table.c[key].type).label(key) for key, value in values.items())
    ).select_from(written)
    return written, insert(table).from_select(list(values), selected).cte("appended")


def appending(
    write: ReturningInsert[Any] | ReturningUpdate[Any],
    table: Table,
    values: Mapping[str, BindParameter[Any]],
) -> Select[Any]:
    """One statement: ``write`` and its row of ``table`` (``appended_to``); it selects what
    ``write`` returns."""
    written, appended = appended_to(write, table, values)
    return select(written).add_cte(appended)


def error_columns(error: AttemptError | None) -> dict[str, object]:
    return {
        "error_code": error.reason.value if error else None,
        "error_message": error.message[:MESSAGE_LIMIT] if error else None,
        "provider_error_code": error.provider_code if error else None,
    }


NO_ERROR: dict[str, object] = {
    "error_code": None,
    "error_message": None,
    "provider_error_code": None,
}


RELEASED: dict[str, object] = {"claimed_until": None, "claim_token": None}


def column_param(model: type[Any], column: str) -> BindParameter[Any]:
    """A parameter named and typed after one of the model's columns."""
    return bindparam(column, type_=model.__table__.c[column].type)


def entity(model: type[T], columns: Mapping[str, Any]) -> T:
    """A ``model`` holding these column values, as the ORM builds the rows it loads: its mapped
    constructor sets one attribute at a time through the instrumentation (28 µs for a
    verification; this, under 2)."""
    built: T = class_mapper(model).class_manager.new_instance()
    built.__dict__.update(columns)
    return built


def joined(row: Mapping[str, Any], label: str, model: type[T]) -> T:
    """The ``model`` a row of a joined SELECT holds, its columns labelled ``<label>_<column>``
    (``LABEL_STYLE_TABLENAME_PLUS_COL``)."""
    columns = model.__table__.columns  # type: ignore[attr-defined]  # mapped classes have one
    return entity(model, {column.key: row[f"{label}_{column.name}"] for column in columns})


def compilations_of(statement: Executable) -> _Compilations | None:
    """What a ``prepared`` statement compiled to; None for one built for a single call."""
    return _PREPARED.get(id(statement))
