"""Alembic is the schema's source of truth; the models must never drift from it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, insert, inspect, text

from shared.kit.crypto import installed
from shared.kit.db.migrate import alembic_config, current_revision_is_head, migration_engine
from shared.kit.lookups import destination_lookup
from shared.tables import METADATA
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.support import postgres_database


def _empty_database(stack: contextlib.ExitStack, backend: str, tmp_path: Path) -> str:
    """A database without a schema: a file for SQLite, a fresh one on the PostgreSQL server."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    assert POSTGRES_URL is not None
    return stack.enter_context(postgres_database(POSTGRES_URL))


@contextlib.contextmanager
def _database_at(backend: str, tmp_path: Path, revision: str) -> Iterator[tuple[Config, Engine]]:
    """A fresh database migrated to ``revision``: its Alembic configuration and an engine."""
    with contextlib.ExitStack() as stack:
        url = _empty_database(stack, backend, tmp_path)
        config = alembic_config(url)
        command.upgrade(config, revision)
        engine = migration_engine(url)
        stack.callback(engine.dispose)
        yield config, engine


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = migration_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, METADATA)
    finally:
        engine.dispose()
    assert differences == [], f"models differ from migrations: {differences}"
    assert current_revision_is_head(database_url)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_migration_downgrades_and_upgrades_again(backend: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        url = _empty_database(stack, backend, tmp_path)
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_existing_rows_move_into_the_default_tenant_encrypted_and_back(
    backend: str, tmp_path: Path
) -> None:
    """0005 on a database with data: every row gets the default tenant, every key every scope
    (and, with 0007, ``users:manage``, which took over part of ``admin``), phones and IPs are
    encrypted (and factors their keyed hash); downgrading restores them."""
    with _database_at(backend, tmp_path, "0004") as (config, engine):
        ids = _insert_single_tenant_rows(engine)

        command.upgrade(config, "0007")
        keyring = installed()
        with engine.connect() as connection:
            (tenant_id, name), *others = connection.execute(text("SELECT id, name FROM tenants"))
            assert name == "default" and others == []
            for table in ("api_keys", "verifications", "verification_checks", "factors",
                          "recovery_codes", "events", "idempotency_keys"):  # fmt: skip
                query = text(f"SELECT tenant_id FROM {table}")  # noqa: S608 - our own names
                tenants = {row[0] for row in connection.execute(query)}
                assert tenants == {tenant_id}, table
            assert connection.execute(text("SELECT scopes FROM api_keys")).scalar() == (
                "verify,users,admin,users:manage"
            )
            to, ip = connection.execute(text("SELECT to_e164, client_ip FROM verifications")).one()
            phone, lookup = connection.execute(
                text("SELECT phone_e164, phone_lookup FROM factors")
            ).one()
            event_ip = connection.execute(text("SELECT client_ip FROM events")).scalar()
        assert PHONE not in (to, phone) and IP not in (ip, event_ip)
        assert keyring.decrypt(to) == keyring.decrypt(phone) == PHONE
        assert keyring.decrypt(ip) == keyring.decrypt(str(event_ip)) == IP
        assert lookup == destination_lookup(keyring, uuid.UUID(str(tenant_id)), PHONE)

        # 0008 renames the columns (a destination may be an email address); the values stay.
        command.upgrade(config, "head")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT destination FROM verifications")).one() == (to,)
            assert connection.execute(
                text("SELECT destination, destination_lookup FROM factors")
            ).one() == (phone, lookup)

        command.downgrade(config, "0004")
        with engine.connect() as connection:
            assert connection.execute(
                text("SELECT to_e164, client_ip FROM verifications")
            ).one() == (
                PHONE,
                IP,
            )
            assert connection.execute(text("SELECT phone_e164 FROM factors")).scalar() == PHONE
            assert connection.execute(text("SELECT client_ip FROM events")).scalar() == IP
            assert connection.execute(text("SELECT id FROM verifications")).scalar() is not None
            assert "tenant_id" not in {
                c["name"] for c in inspect(connection).get_columns("factors")
            }
        assert ids


PHONE, IP = "+14155550123", "203.0.113.9"


def _insert_single_tenant_rows(engine: Engine) -> dict[str, uuid.UUID]:
    """A key, a verification with a check, a factor, a recovery code, an event and an
    idempotency record, as revision 0004 stored them."""
    metadata = MetaData()
    metadata.reflect(engine)
    now = datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    ids = {name: uuid.uuid4() for name in ("key", "verification", "check", "factor", "code")}
    stamps = {"created_at": now, "updated_at": now}
    job = {"provider_attempts": 1, "next_attempt_at": now, "enqueue_count": 1,
           "deadline_at": now, **stamps}  # fmt: skip
    rows: list[tuple[str, dict[str, object]]] = [
        ("api_keys", {"id": ids["key"], "name": "old", "key_hash": "0" * 64,
                      "key_prefix": "tsk_old", "created_at": now}),
        ("verifications", {"id": ids["verification"], "status": "pending", "purpose": "enrollment",
                           "channel": "sms", "to_e164": PHONE, "destination_region": "US",
                           "client_ip": IP, "api_key_id": ids["key"], "send_attempts": 1,
                           "check_attempts": 0, "user_id": "42", **job}),
        ("verification_checks", {"id": ids["check"], "verification_id": ids["verification"],
                                 "status": "queued", **job}),
        ("factors", {"id": ids["factor"], "user_id": "42", "phone_e164": PHONE,
                     "destination_region": "US", "channel": "sms", "status": "unverified",
                     "enrollment_verification_id": ids["verification"], "replaces_others": True,
                     **stamps}),
        ("recovery_codes", {"id": ids["code"], "user_id": "42", "code_hash": "scrypt$x",
                            "created_at": now}),
        ("events", {"occurred_at": now, "type": "factor.enrollment_started", "user_id": "42",
                    "api_key_id": ids["key"], "client_ip": IP, "destination": "+1415•••••23",
                    "detail": {}}),
        ("idempotency_keys", {"id": uuid.uuid4(), "api_key_id": ids["key"], "key": "k",
                              "request_fingerprint": "f" * 64, "response_status": 202,
                              "response_body": {}, "created_at": now, "expires_at": now}),
    ]  # fmt: skip
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as connection:
        for table, values in rows:
            if sqlite:  # reflected, SQLite's ids are plain CHAR(32)
                values = {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in values.items()}
            connection.execute(insert(metadata.tables[table]).values(**values))
    return ids


@pytest.mark.parametrize("backend", BACKENDS)
def test_verifications_that_shared_a_twilio_verification_keep_only_the_newest(
    backend: str, tmp_path: Path
) -> None:
    """0007 on a database where the flaw had struck: two pending verifications with one Twilio
    SID. The older is canceled (superseded) so that the new unique index can hold; the newer
    keeps it, open at Twilio."""
    with _database_at(backend, tmp_path, "0006") as (config, engine):
        older, newer = _two_pending_with_one_sid(engine)
        command.upgrade(config, "head")
        query = text("SELECT status, error_code, provider_open FROM verifications WHERE id = :id")
        with engine.connect() as connection:
            ended = connection.execute(query, {"id": _id_param(engine, older)}).one()
            kept = connection.execute(query, {"id": _id_param(engine, newer)}).one()
        assert (ended[0], ended[1]) == ("canceled", "superseded")
        assert (kept[0], kept[1], bool(kept[2])) == ("pending", None, True)


def _id_param(engine: Engine, row_id: uuid.UUID) -> object:
    return row_id.hex if engine.dialect.name == "sqlite" else row_id


def _two_pending_with_one_sid(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    metadata = MetaData()
    metadata.reflect(engine)
    now = datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    tenant, key = uuid.uuid4(), uuid.uuid4()
    older, newer = uuid.uuid4(), uuid.uuid4()
    sid = "VE" + "a" * 32

    def verification(row_id: uuid.UUID, created: datetime) -> dict[str, object]:
        return {"id": row_id, "tenant_id": tenant, "status": "pending", "purpose": "login",
                "channel": "sms", "to_e164": "sealed", "destination_region": "US",
                "api_key_id": key, "provider_sid": sid, "send_attempts": 1,
                "check_attempts": 0, "provider_attempts": 1, "next_attempt_at": created,
                "enqueue_count": 1, "created_at": created, "updated_at": created,
                "deadline_at": created}  # fmt: skip

    rows = [
        ("tenants", {"id": tenant, "name": "t", "created_at": now}),
        ("api_keys", {"id": key, "name": "k", "tenant_id": tenant, "scopes": "verify",
                      "key_hash": "1" * 64, "key_prefix": "tsk_k", "created_at": now}),
        ("verifications", verification(older, now)),
        ("verifications", verification(newer, now + timedelta(seconds=1))),
    ]  # fmt: skip
    with engine.begin() as connection:
        for table, values in rows:
            if engine.dialect.name == "sqlite":
                values = {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in values.items()}
            connection.execute(insert(metadata.tables[table]).values(**values))
    return older, newer


@pytest.mark.parametrize("backend", BACKENDS)
def test_disabled_factors_take_their_reason_from_the_audit_trail(
    backend: str, tmp_path: Path
) -> None:
    """0011 on a database with disabled factors: each gets the reason its event recorded (an
    enrolment of a phone in use, a replacement, a removal); one whose event is gone, and one
    not disabled, get none."""
    with _database_at(backend, tmp_path, "0010") as (config, engine):
        by_event = {
            "factor.enrollment_failed": "in_use",
            "factor.replaced": "replaced",
            "factor.disabled": "removed",
            "": None,  # disabled, its event gone with the retention: not known
            None: None,  # still verified
        }
        factor_ids = _factors_with_events(engine, list(by_event))
        command.upgrade(config, "head")
        query = text("SELECT disabled_reason FROM factors WHERE id = :id")
        with engine.connect() as connection:
            reasons = [
                connection.execute(query, {"id": _id_param(engine, row_id)}).scalar_one()
                for row_id in factor_ids
            ]
        assert reasons == list(by_event.values())


def _factors_with_events(engine: Engine, events: list[str | None]) -> list[uuid.UUID]:
    """A factor per event, as revision 0010 stored them: disabled with that event recorded (none
    for ""), or verified (None)."""
    metadata = MetaData()
    metadata.reflect(engine)
    now = datetime.now(UTC)
    if engine.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    tenant, factor_ids = uuid.uuid4(), [uuid.uuid4() for _ in events]
    rows: list[tuple[str, dict[str, object]]] = [
        ("tenants", {"id": tenant, "name": "t", "display_name": "T", "created_at": now})
    ]
    for factor_id, event in zip(factor_ids, events, strict=True):
        rows.append(("factors", {"id": factor_id, "tenant_id": tenant, "user_id": "42",
                                 "destination": "sealed", "destination_lookup": "0" * 64,
                                 "channel": "sms", "replaces_others": True,
                                 "status": "verified" if event is None else "disabled",
                                 "created_at": now, "updated_at": now}))  # fmt: skip
        if event:
            event_row = {"occurred_at": now, "type": event, "tenant_id": tenant, "user_id": "42",
                         "factor_id": factor_id, "detail": {}}  # fmt: skip
            rows.append(("events", event_row))
    with engine.begin() as connection:
        for table, values in rows:
            if engine.dialect.name == "sqlite":
                values = {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in values.items()}
            connection.execute(insert(metadata.tables[table]).values(**values))
    return factor_ids
