"""Tenants and scopes; phone numbers and client IPs encrypted; recovery-code selectors.

Every existing row moves into a tenant named ``default``, and every existing API key gets every
scope, so a single-tenant deployment works on as before. Phone numbers and client IPs already in
the database are encrypted under the first of ``TWOSTEP_DATA_KEYS`` (so run ``twostep migrate``
with the keys the processes will use), and factors get the keyed hash their look-ups use.
Recovery codes made before selectors existed keep working (checked hash by hash).

Downgrading decrypts what it encrypted, drops the tenant columns (merging every tenant into one)
and deletes the recovery codes made with selectors, which the old code cannot check.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:00:00
"""

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shared.kit.crypto import installed
from shared.kit.lookups import destination_lookup

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT_TABLES = (
    "verifications",
    "verification_checks",
    "idempotency_keys",
    "factors",
    "recovery_codes",
    "events",
)
# (table, column, length before encryption)
_ENCRYPTED = (
    ("verifications", "to_e164", 16),
    ("verifications", "client_ip", 45),
    ("factors", "phone_e164", 16),
    ("events", "client_ip", 45),
)
_ALL_SCOPES = "verify,users,admin"
_BATCH = 500


def upgrade() -> None:
    tenant_id = _create_default_tenant()
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.add_column(sa.Column("tenant_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.String(length=64), nullable=True))
    op.execute(
        sa.table("api_keys", sa.column("tenant_id", sa.Uuid()), sa.column("scopes"))
        .update()
        .values(tenant_id=tenant_id, scopes=_ALL_SCOPES)
    )
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.alter_column("tenant_id", nullable=False)
        batch_op.alter_column("scopes", nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("api_keys_tenant_id_fkey"), "tenants", ["tenant_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)
    for table in _TENANT_TABLES:
        _add_tenant_column(table, tenant_id)

    for table, column, _length in _ENCRYPTED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(column, type_=sa.String(length=255))
    keyring = installed()
    for table, column, _length in _ENCRYPTED:
        _rewrite(table, column, keyring.encrypt)

    with op.batch_alter_table("factors") as batch_op:
        batch_op.add_column(sa.Column("phone_lookup", sa.String(length=64), nullable=True))
    _fill_phone_lookups()
    with op.batch_alter_table("factors") as batch_op:
        batch_op.alter_column("phone_lookup", nullable=False)
        batch_op.drop_index("ix_factors_phone_e164_status")
        batch_op.drop_index(batch_op.f("ix_factors_user_id"))
        batch_op.create_index("ix_factors_tenant_id_user_id", ["tenant_id", "user_id"])
        batch_op.create_index(
            "ix_factors_tenant_id_phone_lookup_status", ["tenant_id", "phone_lookup", "status"]
        )

    with op.batch_alter_table("recovery_codes") as batch_op:
        batch_op.add_column(sa.Column("selector", sa.String(length=8), nullable=True))
        batch_op.drop_index(batch_op.f("ix_recovery_codes_user_id"))
        batch_op.create_index(
            "ix_recovery_codes_tenant_id_user_id_selector", ["tenant_id", "user_id", "selector"]
        )
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_user_id_id")
        batch_op.create_index("ix_events_tenant_id_user_id_id", ["tenant_id", "user_id", "id"])
        batch_op.create_index("ix_events_occurred_at", ["occurred_at"])
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.create_index("ix_verifications_created_at", ["created_at"])


def downgrade() -> None:
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.drop_index("ix_verifications_created_at")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_occurred_at")
        batch_op.drop_index("ix_events_tenant_id_user_id_id")
        batch_op.create_index("ix_events_user_id_id", ["user_id", "id"])
    op.execute(sa.text("DELETE FROM recovery_codes WHERE selector IS NOT NULL"))
    with op.batch_alter_table("recovery_codes") as batch_op:
        batch_op.drop_index("ix_recovery_codes_tenant_id_user_id_selector")
        batch_op.create_index(batch_op.f("ix_recovery_codes_user_id"), ["user_id"])
        batch_op.drop_column("selector")
    with op.batch_alter_table("factors") as batch_op:
        batch_op.drop_index("ix_factors_tenant_id_phone_lookup_status")
        batch_op.drop_index("ix_factors_tenant_id_user_id")
        batch_op.create_index(batch_op.f("ix_factors_user_id"), ["user_id"])
        batch_op.create_index("ix_factors_phone_e164_status", ["phone_e164", "status"])
        batch_op.drop_column("phone_lookup")

    keyring = installed()
    for table, column, _length in _ENCRYPTED:
        _rewrite(table, column, keyring.decrypt)
    for table, column, length in _ENCRYPTED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column(column, type_=sa.String(length=length))

    for table in reversed(_TENANT_TABLES):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"{table}_tenant_id_fkey"), type_="foreignkey")
            if table in ("verifications", "verification_checks", "idempotency_keys"):
                batch_op.drop_index(batch_op.f(f"ix_{table}_tenant_id"))
            batch_op.drop_column("tenant_id")
    with op.batch_alter_table("api_keys") as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))
        batch_op.drop_constraint(batch_op.f("api_keys_tenant_id_fkey"), type_="foreignkey")
        batch_op.drop_column("scopes")
        batch_op.drop_column("tenant_id")
    op.drop_table("tenants")


def _create_default_tenant() -> uuid.UUID:
    tenants = op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("tenants_pkey")),
        sa.UniqueConstraint("name", name=op.f("tenants_name_key")),
    )
    tenant_id = uuid.uuid4()
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # stored as UTC without a zone, as UTCDateTime does
    op.bulk_insert(tenants, [{"id": tenant_id, "name": "default", "created_at": now}])
    return tenant_id


def _add_tenant_column(table: str, tenant_id: uuid.UUID) -> None:
    with op.batch_alter_table(table) as batch_op:
        batch_op.add_column(sa.Column("tenant_id", sa.Uuid(), nullable=True))
    op.execute(
        sa.table(table, sa.column("tenant_id", sa.Uuid())).update().values(tenant_id=tenant_id)
    )
    with op.batch_alter_table(table) as batch_op:
        batch_op.alter_column("tenant_id", nullable=False)
        batch_op.create_foreign_key(
            batch_op.f(f"{table}_tenant_id_fkey"), "tenants", ["tenant_id"], ["id"]
        )
        if table in ("verifications", "verification_checks", "idempotency_keys"):
            batch_op.create_index(batch_op.f(f"ix_{table}_tenant_id"), ["tenant_id"])


def _rewrite(table_name: str, column_name: str, change: Callable[[str], str]) -> None:
    """Replace every non-null value of a column by ``change(value)``, a batch at a time."""
    connection = op.get_bind()
    key: sa.ColumnClause[object] = sa.column("id")
    value = sa.column(column_name, sa.String())
    table = sa.table(table_name, key, value)
    last: object = None
    while True:
        query = sa.select(key, value).where(value.is_not(None)).order_by(key).limit(_BATCH)
        if last is not None:
            query = query.where(key > last)
        rows = connection.execute(query).all()
        for row_id, plain in rows:
            connection.execute(
                table.update().where(key == row_id).values({column_name: change(plain)})
            )
        if len(rows) < _BATCH:
            return
        last = rows[-1][0]


def _fill_phone_lookups() -> None:
    connection = op.get_bind()
    keyring = installed()
    factors = sa.table(
        "factors",
        sa.column("id", sa.Uuid()),
        sa.column("tenant_id", sa.Uuid()),
        sa.column("phone_e164", sa.String()),
        sa.column("phone_lookup", sa.String()),
    )
    rows = connection.execute(
        sa.select(factors.c.id, factors.c.tenant_id, factors.c.phone_e164)
    ).all()
    for factor_id, tenant_id, encrypted in rows:
        lookup = destination_lookup(keyring, tenant_id, keyring.decrypt(encrypted))
        connection.execute(
            factors.update().where(factors.c.id == factor_id).values(phone_lookup=lookup)
        )
