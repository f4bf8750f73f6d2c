"""Priority classes a job may ask for, and the number each is stored and planned as."""

from __future__ import annotations

PRIORITIES = {"high": 2, "normal": 1, "low": 0}


def priority_name(value: int) -> str:
    """The class stored as ``value``; an unknown number reads as the highest class."""
    return next((name for name, number in PRIORITIES.items() if number == value), "high")
