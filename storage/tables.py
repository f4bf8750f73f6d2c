"""Every module that defines tables, imported so that Base.metadata knows them all.

Alembic and the tests use this; a new model module adds its import here.
"""

from __future__ import annotations

import storage.models  # noqa: F401
from storage import (  # noqa: F401
    alerts,
    audit,
    idempotency,
    registry,
    schedules,
)
from storage.models import Base

metadata = Base.metadata
