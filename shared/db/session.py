"""Engines, sessions and the unit of work.

The unit of work rolls back unless committed, and publishes the jobs it buffered only after its
commit succeeded: a worker can never be handed a row that does not exist yet.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from shared.db.repository import (
    ApiKeyRepository,
    CheckRepository,
    EventRepository,
    FactorRepository,
    IdempotencyRepository,
    RecoveryCodeRepository,
    VerificationRepository,
)
from shared.jobs import Job, JobQueue, PublishFailed

log = structlog.get_logger(__name__)


def make_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _make_sqlite_transactions_immediate(engine)
        return engine
    return create_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    """SQLite takes its write lock lazily, and a read that later writes then fails with "database
    is locked" without waiting. Taking the lock at BEGIN makes concurrent writers queue instead."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=False)


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session], job_queue: JobQueue | None = None):
        self._session_factory = session_factory
        self._job_queue = job_queue
        self._jobs: list[Job] = []

    def __enter__(self) -> Self:
        self.session = self._session_factory()
        self.api_keys = ApiKeyRepository(self.session)
        self.verifications = VerificationRepository(self.session)
        self.checks = CheckRepository(self.session)
        self.idempotency = IdempotencyRepository(self.session)
        self.factors = FactorRepository(self.session)
        self.recovery_codes = RecoveryCodeRepository(self.session)
        self.events = EventRepository(self.session)
        self._jobs = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._jobs = []
        # close() rolls back whatever was not committed and detaches the loaded rows without
        # expiring them, so callers can still read what they loaded.
        self.session.close()

    def enqueue_after_commit(self, job: Job) -> None:
        self._jobs.append(job)

    def commit(self) -> None:
        self.session.commit()
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            self._publish(job)

    def flush(self) -> None:
        """Write pending rows now, e.g. one another row's foreign key points to."""
        self.session.flush()

    def rollback(self) -> None:
        self._jobs = []
        self.session.rollback()

    def _publish(self, job: Job) -> None:
        if self._job_queue is None:
            raise RuntimeError("this unit of work has no job queue to publish to")
        try:
            self._job_queue.publish(job)
        except PublishFailed as exc:
            # The row is committed and queued; the sweeper re-publishes it once the broker is back.
            log.warning(
                "job.publish_failed", job=job.name, entity_id=str(job.entity_id), error=str(exc)
            )


class UnitOfWorkFactory:
    """What the per-process wiring hands to services that need several transactions."""

    def __init__(self, session_factory: sessionmaker[Session], job_queue: JobQueue | None = None):
        self.session_factory = session_factory
        self.job_queue = job_queue

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.job_queue)
