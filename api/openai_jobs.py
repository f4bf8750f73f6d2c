"""When an OpenAI fine-tuning job is expected to finish (``estimated_finish``).

A running job's own ETA (from its measured steps) once it reports one; a waiting job's
estimated start (the wait board, as ``GET /v1/jobs/<id>`` shows it) plus its expected
run time, which a chat fine-tune has from its token count (storage.runtime_estimates).
"""

from __future__ import annotations

import time

from api.jobs import waiting_places
from scheduler.admission import runtime_of
from storage.models import Job


def estimated_finish(job: Job) -> int | None:
    if job.state in ("running", "preempting", "cancelling"):
        eta = (job.progress or {}).get("eta_s")
        return int(time.time() + float(eta)) if isinstance(eta, int | float) else None
    if job.state not in ("pending", "queued"):
        return None
    try:
        runtime = runtime_of((job.spec or {}).get("estimated_runtime_s"))
    except ValueError:
        return None
    if runtime is None:
        return None
    if job.state == "queued":  # placed: it starts as soon as its worker claims it
        return int(time.time() + runtime)
    place = waiting_places([job]).get(job.id)
    if place is None or place.estimated_start is None:
        return None
    return int(place.estimated_start + runtime)
