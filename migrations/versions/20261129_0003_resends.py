"""Re-sends: a pending verification can be sent again (same code, maybe by call).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:58:14.726873
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "resend_channel",
                sa.Enum(
                    "sms",
                    "call",
                    name="resend_channel",
                    native_enum=False,
                    create_constraint=True,
                    length=32,
                ),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("verifications", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("verifications_resend_channel_check"), type_="check")
        batch_op.drop_column("resend_channel")
