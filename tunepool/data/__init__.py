"""Torch-free parsing, validation and statistics of uploaded training data."""

from __future__ import annotations

from tunepool.data.errors import DataError
from tunepool.data.stats import token_dataset_stats
from tunepool.data.token_files import TokenExample, read_token_examples

__all__ = ["DataError", "TokenExample", "read_token_examples", "token_dataset_stats"]
