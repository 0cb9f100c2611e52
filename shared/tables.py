"""Every feature's tables on one metadata: what Alembic compares the migrations with."""

from __future__ import annotations

from shared.audit import models as audit
from shared.kit.db.base import Base
from shared.tenants import models as tenants
from shared.two_step import models as two_step
from shared.verifications import models as verifications
from shared.webhooks import models as webhooks

METADATA = Base.metadata
FEATURES = (tenants, verifications, two_step, audit, webhooks)
