"""A job killed and resumed ends with only the checkpoints retention keeps, and no scratch.

Real worker subprocesses: the first is SIGKILLed mid-run (its scratch directory and any
upload in flight stay behind), the second resumes the job to the end. Afterwards the
object store, the SQL record of stored objects and the checkpoint rows all agree on
exactly the best and the newest K checkpoints.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from scheduler.ticks import run_reaper
from storage.layout import checkpoint_prefix
from storage.models import Checkpoint, JobEvent, StoredObject
from storage.retention import RETAINED, kept_steps
from tests.e2e.conftest import WorkerProcs, wait_until
from tests.e2e.test_training_job import api, job_state, submit, tiny_model, upload

pytestmark = pytest.mark.chaos
__all__ = ["tiny_model"]


def test_a_killed_and_resumed_job_keeps_only_its_retained_checkpoints(
    live: WorkerProcs, tiny_model: str
) -> None:
    client, headers = api(live)
    live.start("wA")
    train, validation = upload(client, headers, 48, 1), upload(client, headers, 8, 2)
    # 6 steps an epoch, a checkpoint every 2: more than the 2 (and the best) retention keeps.
    job_id = submit(
        client, headers, tiny_model, train, validation, epochs=3, checkpoint_every_steps=2
    )

    def checkpoint_events() -> list[dict]:
        with live.platform.sessions() as session:
            return list(
                session.scalars(
                    select(JobEvent.data)
                    .where(JobEvent.job_id == job_id, JobEvent.kind == "checkpoint")
                    .order_by(JobEvent.id)
                )
            )

    def retained_event() -> list[int] | None:
        with live.platform.sessions() as session:
            data = session.scalar(
                select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.kind == RETAINED)
            )
        return None if data is None else list(data["kept_steps"])

    wait_until(lambda: len(checkpoint_events()) >= 2, 180, "two checkpoints", every_s=0.05)
    assert job_state(live, job_id).state == "running", "the job ended before it was killed"
    live.kill("wA")
    job = job_state(live, job_id)
    scratch = live.platform.settings.scratch_dir / job_id
    assert (scratch / "attempt-1").is_dir(), "the killed run left no scratch to clean"
    # An upload the kill cut short: objects in the store, no row for them.
    orphan = checkpoint_prefix(job.team_id, job_id, 99_999_999) + "optimizer.pt"
    live.platform.store.put(orphan, io.BytesIO(b"half a checkpoint"))

    wait_until(
        lambda: job_state(live, job_id).state == "pending",
        60,
        "the reaper to return the job to pending",
        on_tick=lambda: run_reaper(live.platform),
    )
    live.start("wB")
    wait_until(
        lambda: job_state(live, job_id).state in ("succeeded", "failed"),
        300,
        "the resumed job to finish",
        on_tick=lambda: run_reaper(live.platform),
    )
    job = job_state(live, job_id)
    assert job.state == "succeeded", (job.error, live.log("wB")[-3000:])
    assert job.attempt == 2
    # The runner applies retention and clears its scratch right after recording the end.
    scratch_gone = wait_until(lambda: not scratch.exists(), 60, "the job's scratch to go")

    wait_until(lambda: retained_event() is not None, 60, "retention at the job's end")
    events = checkpoint_events()
    expected = kept_steps([e["step"] for e in events], 2, events[-1]["best_step"])
    assert len({e["step"] for e in events}) > len(expected)  # retention had work to do
    job_prefix = f"teams/{job.team_id}/jobs/{job_id}/"
    with live.platform.sessions() as session:
        rows = session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id)).all()
        recorded = set(
            session.scalars(
                select(StoredObject.key).where(
                    StoredObject.key.startswith(job_prefix, autoescape=True)
                )
            )
        )
    assert {r.step for r in rows} == expected
    in_store = {info.key for info in live.platform.store.list(job_prefix)}
    assert in_store == recorded, "the object store and SQL disagree"
    prefixes = {r.prefix for r in rows}
    assert {key[: key.rindex("/") + 1] for key in in_store} == prefixes
    assert orphan not in in_store
    assert retained_event() == sorted(expected)
    assert scratch_gone
