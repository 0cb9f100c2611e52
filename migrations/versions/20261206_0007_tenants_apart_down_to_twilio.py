"""Tenants apart down to Twilio; one twostep verification per Twilio verification; a scope for
login sites.

- Tenants get a display name (the name Twilio's messages carry), the Twilio Verify service they
  send through (``NULL``: the deployment's ``TWILIO_VERIFY_SERVICE_SID``) and their own choice
  of number checks (``NULL``: the deployment's default).
- Verifications remember which Twilio service holds them, whether Twilio may still hold them
  open, and a keyed hash of their destination (to find the earlier ones a new verification to
  the same number supersedes). No two pending verifications may share a Twilio verification:
  where that had already happened, all but the newest of each are canceled first.
- Keys that held ``admin`` also get ``users:manage``, the scope that took over removing factors,
  new recovery codes and a user's audit trail: every key does what it did before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = "status = 'pending'"


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("verify_service_sid", sa.String(length=34), nullable=True))
        batch_op.add_column(sa.Column("line_type_check", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("sim_swap_check", sa.Boolean(), nullable=True))
    tenants = sa.table("tenants", sa.column("name"), sa.column("display_name"))
    op.execute(tenants.update().values(display_name=sa.func.substr(tenants.c.name, 1, 30)))
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.alter_column("display_name", nullable=False)

    with op.batch_alter_table("verifications") as batch_op:
        batch_op.add_column(sa.Column("destination_lookup", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("provider_service_sid", sa.String(length=34), nullable=True))
        batch_op.add_column(
            sa.Column("provider_open", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    verifications = sa.table(
        "verifications",
        sa.column("status", sa.String()),
        sa.column("provider_sid", sa.String()),
        sa.column("provider_open", sa.Boolean()),
        sa.column("created_at", sa.DateTime()),
        sa.column("error_code", sa.String()),
        sa.column("error_message", sa.String()),
    )
    pending = (verifications.c.status == "pending", verifications.c.provider_sid.is_not(None))
    op.execute(verifications.update().where(*pending).values(provider_open=True))
    # Verifications that shared a Twilio verification (the flaw this revision closes): the
    # newest of each keeps it.
    newer = verifications.alias("newer")
    op.execute(
        verifications.update()
        .where(
            *pending,
            sa.exists().where(
                newer.c.provider_sid == verifications.c.provider_sid,
                newer.c.status == "pending",
                newer.c.created_at > verifications.c.created_at,
            ),
        )
        .values(
            status="canceled",
            error_code="superseded",
            error_message="a newer verification to the same number took its place",
        )
    )
    op.create_index(
        "ix_verifications_tenant_id_destination_lookup",
        "verifications",
        ["tenant_id", "destination_lookup"],
    )
    op.create_index(
        "ix_verifications_pending_provider_sid",
        "verifications",
        ["provider_sid"],
        unique=True,
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )

    keys = sa.table("api_keys", sa.column("scopes", sa.String(length=64)))
    op.execute(
        keys.update()
        .where(keys.c.scopes.like("%admin%"), ~keys.c.scopes.like("%users:manage%"))
        .values(scopes=keys.c.scopes + ",users:manage")
    )


def downgrade() -> None:
    keys = sa.table("api_keys", sa.column("scopes", sa.String(length=64)))
    op.execute(
        keys.update()
        .where(keys.c.scopes.like("%users:manage%"))
        .values(
            scopes=sa.func.replace(
                sa.func.replace(keys.c.scopes, ",users:manage", ""), "users:manage", "users"
            )
        )
    )
    op.drop_index("ix_verifications_pending_provider_sid", table_name="verifications")
    op.drop_index("ix_verifications_tenant_id_destination_lookup", table_name="verifications")
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.drop_column("provider_open")
        batch_op.drop_column("provider_service_sid")
        batch_op.drop_column("destination_lookup")
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("sim_swap_check")
        batch_op.drop_column("line_type_check")
        batch_op.drop_column("verify_service_sid")
        batch_op.drop_column("display_name")
