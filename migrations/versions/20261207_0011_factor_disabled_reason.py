"""Why a factor is disabled (``factors.disabled_reason``): ``removed`` by the login server,
``replaced`` by a newer factor of its kind, or ``in_use`` — an enrolment whose phone or address
is verified for another user of the tenant. NULL for a factor that is not disabled.

Factors disabled before this revision take their reason from the audit trail, which records
each of the three as its own event; one whose event is gone (past TWOSTEP_RETENTION_DAYS) keeps
NULL: its reason is not known, and guessing "removed" would tell the login server's owner
something untrue.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REASON_BY_EVENT = (
    ("factor.enrollment_failed", "in_use"),
    ("factor.replaced", "replaced"),
    ("factor.disabled", "removed"),
)


def upgrade() -> None:
    with op.batch_alter_table("factors") as batch_op:
        batch_op.add_column(
            sa.Column(
                "disabled_reason",
                sa.Enum(
                    "removed",
                    "replaced",
                    "in_use",
                    name="factor_disabled_reason",
                    native_enum=False,
                    create_constraint=True,
                    length=32,
                ),
                nullable=True,
            )
        )
    factors = sa.table(
        "factors", sa.column("id"), sa.column("status"), sa.column("disabled_reason")
    )
    events = sa.table("events", sa.column("type"), sa.column("factor_id"))
    reason = sa.case(
        *(
            (
                sa.exists().where(events.c.factor_id == factors.c.id, events.c.type == event),
                said,
            )
            for event, said in _REASON_BY_EVENT
        ),
        else_=None,
    )
    op.execute(
        factors.update().where(factors.c.status == "disabled").values(disabled_reason=reason)
    )


def downgrade() -> None:
    with op.batch_alter_table("factors") as batch_op:
        batch_op.drop_constraint(op.f("factors_factor_disabled_reason_check"), type_="check")
        batch_op.drop_column("disabled_reason")
