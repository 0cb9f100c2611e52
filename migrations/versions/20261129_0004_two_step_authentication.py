"""Two-step authentication: factors, recovery codes and the audit trail.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:34:37.843280
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("code_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("recovery_codes_pkey")),
    )
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recovery_codes_user_id"), ["user_id"], unique=False)

    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "type",
            sa.Enum(
                "verification.requested",
                "verification.resend_requested",
                "verification.sent",
                "verification.failed",
                "verification.approved",
                "verification.canceled",
                "verification.max_attempts_reached",
                "check.rejected",
                "factor.enrollment_started",
                "factor.verified",
                "factor.replaced",
                "factor.disabled",
                "challenge.requested",
                "user.locked",
                "recovery_codes.generated",
                "recovery_code.used",
                "recovery_code.rejected",
                name="eventtype",
                native_enum=False,
                length=48,
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("destination", sa.String(length=24), nullable=True),
        sa.Column("verification_id", sa.Uuid(), nullable=True),
        sa.Column("factor_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("events_api_key_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("events_pkey")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_user_id_id", ["user_id", "id"], unique=False)

    op.create_table(
        "factors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("phone_e164", sa.String(length=16), nullable=False),
        sa.Column("destination_region", sa.String(length=3), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "sms",
                "call",
                name="factor_channel",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "unverified",
                "verified",
                "disabled",
                name="factor_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("enrollment_verification_id", sa.Uuid(), nullable=True),
        sa.Column("replaces_others", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["enrollment_verification_id"],
            ["verifications.id"],
            name=op.f("factors_enrollment_verification_id_fkey"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("factors_pkey")),
        sa.UniqueConstraint(
            "enrollment_verification_id", name=op.f("factors_enrollment_verification_id_key")
        ),
    )
    with op.batch_alter_table("factors", schema=None) as batch_op:
        batch_op.create_index(
            "ix_factors_phone_e164_status", ["phone_e164", "status"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_factors_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("factors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_factors_user_id"))
        batch_op.drop_index("ix_factors_phone_e164_status")

    op.drop_table("factors")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_user_id_id")

    op.drop_table("events")
    with op.batch_alter_table("recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recovery_codes_user_id"))

    op.drop_table("recovery_codes")
