"""The job factory's checks for a view: the checked order, or its refusal as a 4xx."""

from __future__ import annotations

from api.context import db, platform
from api.errors import from_refusal
from storage.job_factory import Checked, JobOrder, check
from storage.refusals import Refusal


def check_order(order: JobOrder) -> Checked:
    """``order`` checked by the job factory (base model, queue, priority cap, quota,
    pool); raises the refusal as the API's 4xx."""
    checked = check(db(), platform().settings, order)
    if isinstance(checked, Refusal):
        raise from_refusal(checked)
    return checked
