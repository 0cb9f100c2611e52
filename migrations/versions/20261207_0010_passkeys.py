"""Passkeys (Twilio Verify Passkeys): channel ``passkey`` for verifications and factors, and a
verification's WebAuthn options for the browser (``passkey_options``, JSON, encrypted; NULL
for codes); a factor's ``label``, the name its user knows an app or a passkey by (encrypted;
NULL for phones and addresses).

Downgrading refuses while any row uses the passkey channel: the older revision could not read
them, and dropping them would lose verifications and factors silently.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("sms", "call", "whatsapp", "email", "totp")
_CHANNELS = (*_BEFORE, "passkey")
# (table, column, the name its CHECK constraint was made with)
_CHANNEL_COLUMNS = (
    ("verifications", "channel", "verification_channel"),
    ("verifications", "resend_channel", "resend_channel"),
    ("factors", "channel", "factor_channel"),
)


def upgrade() -> None:
    with op.batch_alter_table("verifications") as batch_op:
        batch_op.add_column(sa.Column("passkey_options", sa.String(), nullable=True))
        _allow_channels(batch_op, "verifications", _CHANNELS)
    with op.batch_alter_table("factors") as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=512), nullable=True))
        _allow_channels(batch_op, "factors", _CHANNELS)


def downgrade() -> None:
    connection = op.get_bind()
    for table, column, _name in _CHANNEL_COLUMNS:
        used = connection.execute(
            sa.select(sa.func.count())
            .select_from(sa.table(table, sa.column(column)))
            .where(sa.column(column) == "passkey")
        ).scalar()
        if used:
            raise RuntimeError(
                f"{used} row(s) of {table} use the passkey channel, which revision 0009 cannot "
                "hold: remove them (or keep this revision) before downgrading"
            )
    with op.batch_alter_table("factors") as batch_op:
        _allow_channels(batch_op, "factors", _BEFORE)
        batch_op.drop_column("label")
    with op.batch_alter_table("verifications") as batch_op:
        _allow_channels(batch_op, "verifications", _BEFORE)
        batch_op.drop_column("passkey_options")


def _allow_channels(batch_op: BatchOperations, table: str, channels: Sequence[str]) -> None:
    for owner, column, name in _CHANNEL_COLUMNS:
        if owner != table:
            continue
        constraint = op.f(f"{table}_{name}_check")
        batch_op.drop_constraint(constraint, type_="check")
        batch_op.create_check_constraint(constraint, sa.column(column).in_(channels))
