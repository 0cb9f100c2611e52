"""The audit trail: appended to and read, never changed."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Table,
    bindparam,
    delete,
    insert,
    select,
)
from sqlalchemy.sql import Executable

from shared.audit.models import Event
from shared.kit.db.repository import Repository
from shared.kit.db.statements import prepared, values_of
from shared.tenants.models import ApiKey

_EVENT_COLUMNS = tuple(column.key for column in Event.__table__.columns if column.key != "id")

# An event's columns as parameters of a statement that appends it with the change it records
# (``inserted_with``): named apart from the change's own.
EVENT_VALUES: dict[str, BindParameter[Any]] = {
    column: bindparam(f"event_{column}", type_=Event.__table__.c[column].type)
    for column in _EVENT_COLUMNS
}


def event_values(event: Event) -> dict[str, Any]:
    """The values of ``EVENT_VALUES`` for an event."""
    return {f"event_{column}": getattr(event, column) for column in _EVENT_COLUMNS}


class EventRepository(Repository):
    """Append and read; there is deliberately no way to change an event, and the only removal
    is retention's, of events older than the retention period."""

    @prepared
    def _append(cls) -> Executable:
        table: Table = Event.__table__  # type: ignore[assignment]  # mapped classes have one
        columns = values_of(table)
        del columns["id"]  # numbered by the database
        return insert(table).values(columns)

    async def append(self, event: Event) -> None:
        """Insert an event as a plain statement: no session bookkeeping for a row nobody reads
        back in the same transaction."""
        await self._run_prepared(
            self._append, **{column: getattr(event, column) for column in _EVENT_COLUMNS}
        )

    async def page_for_user(
        self, tenant_id: uuid.UUID, user_id: str, *, before: int | None, limit: int
    ) -> Sequence[tuple[Event, str | None]]:
        """Newest first, with the name of the API key that caused each event."""
        statement = (
            select(Event, ApiKey.name)
            .outerjoin(ApiKey, ApiKey.id == Event.api_key_id)
            .where(Event.tenant_id == tenant_id, Event.user_id == user_id)
            .order_by(Event.id.desc())
            .limit(limit)
        )
        if before is not None:
            statement = statement.where(Event.id < before)
        return [(event, name) for event, name in (await self.session.execute(statement)).all()]

    async def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        """Retention: forget the oldest events, a batch at a time."""
        oldest = select(Event.id).where(Event.occurred_at < cutoff).limit(limit)
        return await self._write(delete(Event).where(Event.id.in_(oldest.scalar_subquery())))
