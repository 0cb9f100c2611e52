"""Every feature's tables on one metadata: what Alembic compares the migrations with."""

from __future__ import annotations

# Importing a feature's models registers its tables on Base.metadata.
from shared.audit import models as _audit  # noqa: F401
from shared.kit.db.base import Base
from shared.tenants import models as _tenants  # noqa: F401
from shared.two_step import models as _two_step  # noqa: F401
from shared.verifications import models as _verifications  # noqa: F401
from shared.webhooks import models as _webhooks  # noqa: F401

METADATA = Base.metadata
