"""The API fixtures (real app, SQL, Redis, keys) serve the observability tests too."""

from __future__ import annotations

from tests.api.conftest import app, client, make_key, platform  # noqa: F401
