"""State columns with one writer: schedule runs (``move_run``), workers
(``set_worker_state``) and job runs' outcomes (``end_run``); the values stay the strings
already stored."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from storage.attempts import ENDED, TAKEN, AttemptOutcome, StopReason
from storage.models import Team, Worker
from storage.schedules import RunOutcome, RunState, Schedule, ScheduleRun, move_run
from storage.worker_state import WorkerState, set_worker_state
from tests.storage.test_layout import ROOT, production_modules

# The one module allowed to write each table's state columns.
OWNERS = {
    "ScheduleRun": ROOT / "storage" / "schedules.py",
    "Worker": ROOT / "storage" / "worker_state.py",
    "JobRun": ROOT / "storage" / "lease.py",
}
COLUMNS = {"ScheduleRun": {"state", "outcome"}, "Worker": {"state"}, "JobRun": {"outcome"}}
ENUMS = {"RunState": "ScheduleRun", "RunOutcome": "ScheduleRun", "WorkerState": "Worker"}
# Other ``state`` columns with their own writers (incidents: scheduler/alerts/engine.py).
OTHER_STATE_OBJECTS = {"self", "incident", "job"}


def test_stored_values_stay_the_same_strings() -> None:
    assert [s.value for s in RunState] == ["submitting", "training", "evaluating", "decided"]
    assert [o.value for o in RunOutcome] == ["promoted", "kept", "failed"]
    assert [s.value for s in WorkerState] == ["alive", "stopped", "lost"]
    assert [r.value for r in StopReason] == ["cancel", "preempt", "shutdown", "lease_lost"]
    assert {o.value for o in AttemptOutcome} == {
        "succeeded",
        "failed",
        "cancelled",
        "preempted",
        "shutdown",
        "lease_lost",
        "not_claimed",
        "lease_expired",
        "worker_lost",
    }
    assert {"succeeded", "failed", "cancelled"} == ENDED
    assert {"lease_expired", "worker_lost"} == TAKEN


def _run(session: Session) -> str:
    team = Team(name="t")
    session.add(team)
    session.flush()
    schedule = Schedule(
        team_id=team.id,
        name="nightly",
        cron="0 3 * * *",
        task="token-classification",
        model_name="ner",
        dataset_name="d",
        base_model="noop:x",
        evaluation_dataset="ds_1",
        metric="f1",
    )
    session.add(schedule)
    session.flush()
    run = ScheduleRun(schedule_id=schedule.id, team_id=team.id, fire_time=1.0, trigger="cron")
    session.add(run)
    session.commit()
    assert run.state == RunState.SUBMITTING.value
    return run.id


def test_a_schedule_run_moves_by_compare_and_set(session: Session) -> None:
    run_id = _run(session)
    assert move_run(session, run_id, RunState.SUBMITTING, RunState.TRAINING, job_id="job_1")
    # A second tick that saw the same state moves nothing.
    assert not move_run(session, run_id, RunState.SUBMITTING, RunState.DECIDED)
    decided = move_run(
        session,
        run_id,
        RunState.TRAINING,
        RunState.DECIDED,
        outcome=RunOutcome.FAILED,
        reason="retrain job gone",
    )
    assert decided
    session.commit()
    run = session.get(ScheduleRun, run_id, populate_existing=True)
    assert run is not None
    assert (run.state, run.outcome, run.job_id) == ("decided", "failed", "job_1")


def test_a_schedule_run_refuses_an_illegal_move(session: Session) -> None:
    run_id = _run(session)
    with pytest.raises(ValueError, match="illegal move"):
        move_run(session, run_id, RunState.DECIDED, RunState.TRAINING)
    with pytest.raises(ValueError, match="illegal move"):
        move_run(session, run_id, RunState.SUBMITTING, RunState.EVALUATING)


def test_a_worker_state_is_written_as_its_stored_string(session: Session) -> None:
    worker = Worker(name="w1", hostname="h", queue="q", slots=1)
    session.add(worker)
    session.commit()
    assert worker.state == "alive"
    set_worker_state(worker, WorkerState.LOST)
    session.commit()
    assert session.get(Worker, "w1", populate_existing=True).state == "lost"  # type: ignore[union-attr]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def state_writes(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: what`` for each write of ``schedule_runs.state`` or ``workers.state``
    in ``path`` that is not its owner's."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    where = path.relative_to(root)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            callee = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            args = {a.id for a in node.args if isinstance(a, ast.Name)}
            for table, owner in OWNERS.items():
                if path == owner:
                    continue
                if callee == "update" and table in args:
                    found.append(f"{where}:{node.lineno}: update({table})")
                written = {k.arg for k in node.keywords} & COLUMNS[table]
                if callee in (table, "values") and written:
                    mentions = _names(node) & (set(ENUMS) | {table})
                    if table in mentions or any(ENUMS.get(m) == table for m in mentions):
                        found.append(f"{where}:{node.lineno}: {callee}({min(written)}=...)")
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                targets += target.elts if isinstance(target, ast.Tuple) else [target]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr in ("state", "outcome")
                and not (
                    isinstance(target.value, ast.Name) and target.value.id in OTHER_STATE_OBJECTS
                )
                and path not in OWNERS.values()
            ):
                found.append(f"{where}:{node.lineno}: {ast.unparse(target)} = ...")
    return found


def test_only_the_owners_write_run_worker_and_attempt_states() -> None:
    offenders = [hit for path in production_modules(ROOT) for hit in state_writes(path)]
    assert offenders == [], "write these through move_run, set_worker_state, end_run:\n" + (
        "\n".join(offenders)
    )


def test_the_scan_finds_a_second_writer(tmp_path: Path) -> None:
    module = tmp_path / "pool.py"
    module.write_text(
        "def lose(worker, session, run_id):\n"
        '    worker.state = "lost"\n'
        "    session.execute(update(ScheduleRun).values(state=RunState.DECIDED))\n"
        '    session.add(Worker(name="w", state="alive"))\n'
        '    session.execute(update(JobRun).values(outcome="failed"))\n'
        "    self.state = 1\n"
    )
    assert sorted(state_writes(module, tmp_path)) == [
        "pool.py:2: worker.state = ...",
        "pool.py:3: update(ScheduleRun)",
        "pool.py:3: values(state=...)",
        "pool.py:4: Worker(state=...)",
        "pool.py:5: update(JobRun)",
        "pool.py:5: values(outcome=...)",
    ]
