"""A dataset's status (``datasets.status``) and its one writer.

An upload is checked at once for what needs no tokenizer (its format, line by line) and
stored ``validating``; a worker then reads it with a tokenizer, adds the word-piece
statistics and moves it to ``ready``, or to ``failed`` naming the problem and its line,
as OpenAI's files go from ``uploaded`` to ``processed`` or ``error``. A job may start
from a ``validating`` dataset (its format is already known good), never a ``failed`` one.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session


class DatasetStatus(enum.StrEnum):
    VALIDATING = "validating"
    READY = "ready"
    FAILED = "failed"


def finish_check(
    session: Session,
    dataset_id: str,
    *,
    stats: dict[str, Any] | None = None,
    problem: str | None = None,
    line: int | None = None,
) -> bool:
    """The one writer of ``datasets.status``: ``validating`` -> ``ready`` with ``stats``
    (replacing the upload's), or -> ``failed`` with ``problem`` (and its ``line``).

    Compare-and-set: a second delivery of the same check finds the dataset no longer
    validating and changes nothing (False). The caller commits.
    """
    from storage.models import Dataset, table_of

    values: dict[str, Any]
    if problem is not None:
        details = {"message": problem, "line": line}
        values = {"status": DatasetStatus.FAILED.value, "status_details": details}
    else:
        values = {"status": DatasetStatus.READY.value, "status_details": None}
        if stats is not None:
            values["stats"] = stats
    table = table_of(Dataset)
    result = session.execute(
        update(table)
        .where(table.c.id == dataset_id, table.c.status == DatasetStatus.VALIDATING.value)
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))
