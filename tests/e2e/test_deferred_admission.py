"""Production's deferred admission with real processes: submits only ask for a pass, the
control worker runs it, and a burst of submits shares a few passes."""

from __future__ import annotations

import pytest

from api.app import create_app
from storage.db import transaction
from storage.platform import Platform
from storage.teams import create_team
from tests.e2e.conftest import WorkerProcs, wait_until
from tests.e2e.invariants import assert_invariants
from tests.e2e.test_training_job import job_state, upload
from tunepool.observations import admission_pass_histogram

pytestmark = pytest.mark.chaos

JOBS = 12


def test_a_burst_of_submits_is_admitted_by_the_control_worker_in_few_passes(
    live: WorkerProcs,
) -> None:
    live.env["TUNEPOOL_ADMISSION_COALESCE_S"] = "0.5"
    live.allow_noop_engine()
    settings = live.platform.settings.model_copy(update={"admission_coalesce_s": 0.5})
    api_platform = Platform(settings)
    client = create_app(platform=api_platform).test_client()
    with transaction(api_platform.sessions) as session:
        _, key = create_team(session, "burst", role="member")
    headers = {"Authorization": f"Bearer {key}"}
    train = upload(client, headers, 20, 1)
    live.start("w1", slots=2)
    live.start_control()

    jobs = []
    for _ in range(JOBS):
        resp = client.post(
            "/v1/jobs",
            headers=headers,
            json={
                "task": "token-classification",
                "base_model": "noop:succeed",
                "train_dataset": train,
            },
        )
        assert resp.status_code == 201, resp.get_json()
        body = resp.get_json()
        # The request only asked for a pass; it did not run one.
        assert body["state"] == "pending"
        assert body["reason"] == "waiting for the next admission pass"
        jobs.append(body["id"])
    wait_until(
        lambda: all(job_state(live, j).state == "succeeded" for j in jobs),
        120,
        "the burst to be admitted and run",
    )
    # The upload's word-piece check waited on the datasets queue, which the control
    # worker consumes beside its own: the dataset leaves `validating`.
    wait_until(
        lambda: (
            client.get(f"/v1/datasets/{train}", headers=headers).get_json()["status"] == "ready"
        ),
        60,
        "the control worker to check the upload",
    )
    histogram = admission_pass_histogram(settings.redis_url)
    assert histogram is not None
    buckets, _ = histogram
    passes = buckets[-1][1]  # the +Inf bucket: every pass
    # Twelve submits and twelve finished jobs each asked; windows shared them.
    assert 1 <= passes < 2 * JOBS
    assert_invariants(live.platform, dict.fromkeys(jobs, "succeeded"))
    api_platform.close()
