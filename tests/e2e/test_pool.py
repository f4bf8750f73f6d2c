"""The shared pool with real worker processes: quotas, placement, preemption, cancel."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from scheduler.ticks import run_reaper
from storage.db import transaction
from storage.models import Job, JobEvent, JobRun, Team
from tests.e2e.conftest import WorkerProcs, wait_until
from tests.e2e.test_training_job import api, job_state, submit, tiny_model, upload
from tunepool.processes import process_alive

pytestmark = pytest.mark.chaos
__all__ = ["tiny_model"]

TERMINAL = ("succeeded", "failed", "cancelled")


def wait_registered(live: WorkerProcs, *names: str) -> None:
    from storage.models import Worker

    def registered() -> bool:
        with live.platform.sessions() as session:
            found = set(session.scalars(select(Worker.name).where(Worker.state == "alive")))
        return set(names) <= found

    wait_until(registered, 60, f"workers {names} to register")


def finish(live: WorkerProcs, *job_ids: str, timeout_s: float = 240) -> None:
    wait_until(
        lambda: all(job_state(live, j).state in TERMINAL for j in job_ids),
        timeout_s,
        f"jobs {job_ids} to finish",
        on_tick=lambda: run_reaper(live.platform),
    )


def test_quota_waits_while_another_team_runs_and_two_slots_land_on_one_worker(
    live: WorkerProcs, tiny_model: str
) -> None:
    client, alpha = api(live)
    live.start("small", slots=1)
    live.start("big", slots=2)
    wait_registered(live, "small", "big")
    with transaction(live.platform.sessions) as session:
        session.execute(update(Team).where(Team.name == "e2e").values(max_gpus=2, can_borrow=False))
    train, validation = upload(client, alpha, 40, 1), upload(client, alpha, 10, 2)
    pair = client.post(
        "/v1/jobs",
        headers=alpha,
        json={
            "task": "token-classification",
            "base_model": tiny_model,
            "train_dataset": train,
            "validation_dataset": validation,
            "resources": {"gpus": 2},
            "hyperparameters": {"epochs": 1, "batch_size": 8},
        },
    ).get_json()
    over = submit(client, alpha, tiny_model, train, validation, epochs=1)
    assert pair["state"] == "queued" and pair["worker"] == "big"
    with live.platform.sessions() as session:
        placed = session.get(Job, pair["id"])
        assert placed is not None and sorted(placed.gpu_indices) == [0, 1]
    waiting = client.get(f"/v1/jobs/{over}", headers=alpha).get_json()
    assert waiting["state"] == "pending" and waiting["reason_code"] == "quota"
    assert waiting["queue_position"] == 1

    # Another team is not held back by alpha's quota: its job runs on the free slot.
    from storage.teams import create_team

    with transaction(live.platform.sessions) as session:
        _, key = create_team(session, "other", role="member")
    other = {"Authorization": f"Bearer {key}"}
    other_train = upload(client, other, 40, 3)
    theirs = submit(client, other, tiny_model, other_train, other_train, epochs=1)
    assert job_state(live, theirs).state in ("queued", "running", "succeeded")
    assert job_state(live, over).state == "pending"
    finish(live, pair["id"], over, theirs)
    assert {job_state(live, j).state for j in (pair["id"], over, theirs)} == {"succeeded"}


CHECKPOINT_EVERY = 25


def test_high_priority_preempts_low_which_resumes_from_its_checkpoint(
    live: WorkerProcs, tiny_model: str
) -> None:
    client, headers = api(live)
    live.start("solo", slots=1)
    wait_registered(live, "solo")
    train, validation = upload(client, headers, 600, 1), upload(client, headers, 20, 2)
    low = client.post(
        "/v1/jobs",
        headers=headers,
        json={
            "task": "token-classification",
            "base_model": tiny_model,
            "train_dataset": train,
            "validation_dataset": validation,
            "priority": "low",
            # Long enough (1,500 steps) that it is still running when the high-priority
            # job arrives, even on a fast host; 2 epochs of 75 steps took 0.6 s on one.
            "hyperparameters": {
                "epochs": 20,
                "batch_size": 8,
                "checkpoint_every_steps": CHECKPOINT_EVERY,
            },
        },
    ).get_json()["id"]

    def progressed() -> bool:
        return int(job_state(live, low).progress.get("step") or 0) >= 20

    wait_until(progressed, 120, "the low-priority job to train a while")
    high = client.post(
        "/v1/jobs",
        headers=headers,
        json={
            "task": "token-classification",
            "base_model": tiny_model,
            "train_dataset": validation,
            "validation_dataset": validation,
            "priority": "high",
            "hyperparameters": {"epochs": 1, "batch_size": 8},
        },
    ).get_json()["id"]
    wait_until(
        lambda: job_state(live, low).state == "pending",
        60,
        "the low-priority job to yield",
        on_tick=lambda: run_reaper(live.platform),
    )
    finish(live, high, low, timeout_s=300)
    assert job_state(live, high).state == "succeeded", job_state(live, high).error
    assert job_state(live, low).state == "succeeded"
    with live.platform.sessions() as session:
        runs = session.scalars(
            select(JobRun).where(JobRun.job_id == low).order_by(JobRun.attempt)
        ).all()
        steps = [
            e.data["step"]
            for e in session.scalars(
                select(JobEvent).where(
                    JobEvent.job_id == low,
                    JobEvent.kind == "progress",
                    JobEvent.at <= runs[0].ended_at,
                )
            )
        ]
        high_run = session.scalar(select(JobRun).where(JobRun.job_id == high))
    assert [r.outcome for r in runs] == ["preempted", "succeeded"]
    assert high_run is not None and high_run.started_at >= runs[0].ended_at
    # It yielded by checkpointing: the next run starts no more than one interval back.
    assert runs[1].start_step >= max(steps) - CHECKPOINT_EVERY and runs[1].start_step > 0


def test_cancel_of_a_running_job_leaves_no_process_behind(
    live: WorkerProcs, tiny_model: str
) -> None:
    client, headers = api(live)
    live.start("wA", slots=1)
    train, validation = upload(client, headers, 600, 1), upload(client, headers, 20, 2)
    # Far more epochs than it will run: the cancel must find it still training.
    job_id = submit(client, headers, tiny_model, train, validation, epochs=100)
    wait_until(
        lambda: int(job_state(live, job_id).progress.get("step") or 0) >= 5,
        120,
        "the job to start training",
    )
    resp = client.post(f"/v1/jobs/{job_id}/cancel", headers=headers).get_json()
    assert resp["state"] == "cancelling"
    wait_until(lambda: job_state(live, job_id).state == "cancelled", 60, "the cancel to complete")
    with live.platform.sessions() as session:
        run = session.scalar(select(JobRun).where(JobRun.job_id == job_id))
    assert run is not None and run.outcome == "cancelled" and run.pid is not None
    wait_until(lambda: not process_alive(run.pid or 0), 30, "the job's process to exit")
