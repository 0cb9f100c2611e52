"""Codes by email, WhatsApp and authenticator apps: a verification's or a factor's destination is
a phone number, an email address or a TOTP factor at Twilio.

- ``verifications.to_e164`` → ``destination``; ``factors.phone_e164`` → ``destination`` and
  ``factors.phone_lookup`` → ``destination_lookup`` (same values: the keyed hashes keep their
  key, so existing look-ups still find their rows).
- ``destination_region`` may be NULL: an email address has no country; destinations hold up
  to 512 characters encrypted (an address of 254 is 420), the audit's masked ones 260.
- Channels ``whatsapp``, ``email`` and ``totp`` (an authenticator app's code, checked through
  Twilio Verify's Factors API) join ``sms`` and ``call``.

Downgrading refuses while any row uses the new channels: the older revision could not read
them, and dropping them would lose verifications and factors silently.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PHONE_CHANNELS = ("sms", "call")
_SEALED = sa.String(255)  # an encrypted phone number's column until now
_CHANNELS = ("sms", "call", "whatsapp", "email", "totp")
# (table, column, the name its CHECK constraint was made with)
_CHANNEL_COLUMNS = (
    ("verifications", "channel", "verification_channel"),
    ("verifications", "resend_channel", "resend_channel"),
    ("factors", "channel", "factor_channel"),
)


def upgrade() -> None:
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.alter_column(
            "to_e164", new_column_name="destination", type_=sa.String(512), existing_type=_SEALED
        )
        batch_op.alter_column("destination_region", existing_type=sa.String(3), nullable=True)
        _allow_channels(batch_op, "verifications", _CHANNELS)
    with op.batch_alter_table("factors") as batch_op:
        batch_op.drop_index("ix_factors_tenant_id_phone_lookup_status")
        batch_op.alter_column(
            "phone_e164", new_column_name="destination", type_=sa.String(512), existing_type=_SEALED
        )
        batch_op.alter_column("phone_lookup", new_column_name="destination_lookup")
        batch_op.alter_column("destination_region", existing_type=sa.String(3), nullable=True)
        _allow_channels(batch_op, "factors", _CHANNELS)
    with op.batch_alter_table("factors") as batch_op:
        batch_op.create_index(
            "ix_factors_tenant_id_destination_lookup_status",
            ["tenant_id", "destination_lookup", "status"],
        )
    with op.batch_alter_table("events") as batch_op:
        batch_op.alter_column("destination", type_=sa.String(260), existing_type=sa.String(24))


def downgrade() -> None:
    _refuse_rows_of_new_channels()
    with op.batch_alter_table("events") as batch_op:
        batch_op.alter_column("destination", type_=sa.String(24), existing_type=sa.String(260))
    with op.batch_alter_table("factors") as batch_op:
        batch_op.drop_index("ix_factors_tenant_id_destination_lookup_status")
        batch_op.alter_column(
            "destination", new_column_name="phone_e164", type_=_SEALED, existing_type=sa.String(512)
        )
        batch_op.alter_column("destination_lookup", new_column_name="phone_lookup")
        batch_op.alter_column("destination_region", existing_type=sa.String(3), nullable=False)
        _allow_channels(batch_op, "factors", _PHONE_CHANNELS)
    with op.batch_alter_table("factors") as batch_op:
        batch_op.create_index(
            "ix_factors_tenant_id_phone_lookup_status", ["tenant_id", "phone_lookup", "status"]
        )
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.alter_column(
            "destination", new_column_name="to_e164", type_=_SEALED, existing_type=sa.String(512)
        )
        batch_op.alter_column("destination_region", existing_type=sa.String(3), nullable=False)
        _allow_channels(batch_op, "verifications", _PHONE_CHANNELS)


def _allow_channels(batch_op: BatchOperations, table: str, channels: Sequence[str]) -> None:
    for owner, column, name in _CHANNEL_COLUMNS:
        if owner != table:
            continue
        constraint = op.f(f"{table}_{name}_check")
        batch_op.drop_constraint(constraint, type_="check")
        batch_op.create_check_constraint(constraint, sa.column(column).in_(channels))


def _refuse_rows_of_new_channels() -> None:
    connection = op.get_bind()
    for table, column, _name in _CHANNEL_COLUMNS:
        used = connection.execute(
            sa.select(sa.func.count())
            .select_from(sa.table(table, sa.column(column)))
            .where(sa.column(column).not_in(_PHONE_CHANNELS))
        ).scalar()
        if used:
            raise RuntimeError(
                f"{used} row(s) of {table} use the email, WhatsApp or TOTP channel, which revision 0007 "
                "cannot hold: remove them (or keep this revision) before downgrading"
            )
