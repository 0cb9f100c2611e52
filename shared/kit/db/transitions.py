"""A lifecycle's moves as SQL: the WHERE and SET of the single UPDATE that makes a move, so a
row's status changes only as its lifecycle (``shared.kit.lifecycle``) allows, atomically."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, case, literal, null
from sqlalchemy.orm import QueryableAttribute

from shared.kit.lifecycle import Lifecycle, Status

# A mapped class's status attribute, or the table's column.
StatusColumn = ColumnElement[Any] | QueryableAttribute[Any]


def may_make(
    status: StatusColumn, lifecycle: Lifecycle[Status], move: StrEnum
) -> ColumnElement[bool]:
    """Rows whose status ``move`` may start from."""
    return one_of(status, lifecycle.starts(move))


def one_of(status: StatusColumn, statuses: Iterable[StrEnum]) -> ColumnElement[bool]:
    """Rows in one of ``statuses``, each a parameter of its own: an IN over a list would be
    expanded again at every execution of a prepared statement."""
    return status.in_([literal(value, status.type) for value in sorted(statuses)])


def status_after(
    status: StatusColumn, lifecycle: Lifecycle[Status], move: StrEnum
) -> ColumnElement[Any]:
    """The status a row is left in: one value, or a CASE over the statuses the move starts
    from (a re-send keeps a pending verification pending, a first send leaves "sending")."""
    changes = lifecycle.moves[move]
    targets = set(changes.values())
    if len(targets) == 1:
        return literal(targets.pop(), status.type)
    return case(
        *((status == start, literal(end, status.type)) for start, end in sorted(changes.items()))
    )


def completed_at_after(
    status: StatusColumn,
    lifecycle: Lifecycle[Status],
    move: StrEnum,
    now: datetime | BindParameter[datetime],
) -> ColumnElement[Any] | datetime | BindParameter[datetime] | None:
    """``now`` for the rows the move ends, nothing for those it leaves open."""
    ending = sorted(start for start in lifecycle.starts(move) if lifecycle.ends(move, start))
    if len(ending) == len(lifecycle.moves[move]):
        return now
    if not ending:
        return None
    return case((one_of(status, ending), now), else_=null())
