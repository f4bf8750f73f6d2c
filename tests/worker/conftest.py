"""The object stores of the storage tests (a folder, and S3 through moto) serve here too."""

from __future__ import annotations

from tests.storage.conftest import s3_endpoint, store  # noqa: F401
