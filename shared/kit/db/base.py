"""The declarative base, its UTC timestamps, and what every job row has (claims, attempts,
deadlines, the last error)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import DateTime, Dialect, Enum, FromClause, MetaData, String, TypeDecorator, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps the zone; SQLite keeps none and would hand back naive datetimes, which
    cannot be compared with aware ones. Values are stored as UTC and come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, _dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def enum_column(enum_class: type[StrEnum], name: str) -> Enum:
    """A StrEnum column stored as its values, with a CHECK constraint on every backend."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class JobRow:
    """What a row needs to be worked on by jobs: claims, attempts, deadlines, the last error."""

    if TYPE_CHECKING:  # every job row's own table declares these
        __table__: ClassVar[FromClause]
        id: Mapped[uuid.UUID]
        tenant_id: Mapped[uuid.UUID]
        status: Mapped[Any]

    # Provider calls made for this row's job (retries included).
    provider_attempts: Mapped[int] = mapped_column(default=0)
    # Set while a worker holds the row; another worker may take it over once it has passed.
    claimed_until: Mapped[datetime | None]
    # Which claim may write the outcome: a worker whose lease ran out must not overwrite another's.
    claim_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Set just before a provider call and cleared once its outcome is known: a value left over
    # means an earlier call's outcome was lost, so the next attempt must look before it sends.
    provider_call_started_at: Mapped[datetime | None]
    # When the sweeper should consider the job lost if the row is still waiting.
    next_attempt_at: Mapped[datetime]
    # How often a job for this row was published; the sweeper backs off by it.
    enqueue_count: Mapped[int] = mapped_column(default=0)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(300))
    provider_error_code: Mapped[int | None]

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deadline_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
