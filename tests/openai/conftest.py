"""The live API fixtures of the CLI tests serve the openai client tests too."""

from __future__ import annotations

from tests.cli.conftest import e2e_database_url, live, live_api, tiny_model  # noqa: F401
