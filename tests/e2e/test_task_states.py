"""What Flower shows of a job's task: FAILURE for a failed job, SUCCESS for a finished one
(issue 24, item 15). Flower builds its task list from Celery's events with
``celery.events.state.State``; so does this test, from a real worker's events."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from celery.events.state import State

from tests.e2e.conftest import WorkerProcs, wait_until
from tests.e2e.invariants import runs_of
from tests.e2e.test_chaos import noop_job
from tests.e2e.test_training_job import api, job_state, upload
from tunepool.messages import TRAIN_TASK


@pytest.fixture
def task_events(live: WorkerProcs) -> Iterator[State]:
    """Celery's event state of this test's broker, as Flower keeps it."""
    app = live.platform.celery
    state = app.events.State()
    ready = threading.Event()
    holder: list[object] = []

    def capture() -> None:
        with app.connection_for_read() as connection:
            receiver = app.events.Receiver(connection, handlers={"*": state.event})
            holder.append(receiver)
            ready.set()
            receiver.capture(limit=None, timeout=None, wakeup=False)

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield state
    receiver = holder[0]
    receiver.should_stop = True  # type: ignore[attr-defined]
    thread.join(10)


def _task_state(state: State, job_id: str) -> str | None:
    for _, task in state.tasks_by_type(TRAIN_TASK):
        if job_id in str(task.args) and task.state in ("SUCCESS", "FAILURE"):
            return str(task.state)
    return None


def test_a_failed_job_is_a_failed_task_and_a_finished_one_succeeded(
    live: WorkerProcs, task_events: State
) -> None:
    live.allow_noop_engine()
    client, headers = api(live)
    train = upload(client, headers, 20, 1)
    live.start("wA")
    # An engine behaviour the no-op engine does not know raises: the job fails.
    failing = noop_job(client, headers, train, "raise", max_attempts=3)
    fine = noop_job(client, headers, train, "succeed")
    for job_id, expected in ((failing, "FAILURE"), (fine, "SUCCESS")):
        wait_until(
            lambda job_id=job_id: _task_state(task_events, job_id) is not None,
            90,
            f"the task of {job_id} to end",
        )
        assert _task_state(task_events, job_id) == expected
    assert job_state(live, failing).state == "failed" and job_state(live, failing).error
    assert job_state(live, fine).state == "succeeded"
    # The failure was recorded before the task raised, and nothing ran it again.
    assert [r.outcome for r in runs_of(live.platform, failing)] == ["failed"]
    # An expected error (the task's ``throws``): one line in the worker's log, no traceback.
    assert "raised expected: JobFailed" in live.log("wA")
