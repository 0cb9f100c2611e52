"""A tenant's login site as WebAuthn's relying party: its RP id and origins (``NULL``: no
passkeys until ``twostep tenants passkeys`` sets them).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.add_column(sa.Column("passkey_rp_id", sa.String(length=253), nullable=True))
        batch_op.add_column(sa.Column("passkey_origins", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("passkey_origins")
        batch_op.drop_column("passkey_rp_id")
