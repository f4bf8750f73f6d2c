"""The scratch sweep deletes only what no run, on any worker sharing the root, can still use."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from storage.models import Job, Team
from storage.scratch import release_scratch, sweep_scratch


def job(session: Session, team: str, state: str, attempt: int) -> str:
    row = Job(
        team_id=team,
        type="finetune",
        task="token-classification",
        spec={},
        state=state,
        attempt=attempt,
    )
    session.add(row)
    session.commit()
    return row.id


def attempt(root: Path, job_id: str, n: int) -> Path:
    path = root / job_id / f"attempt-{n}" / "data"
    path.mkdir(parents=True)
    (path / "train.conll").write_text("x")
    return path.parent


def test_sweep_keeps_live_runs_and_claims_in_flight_and_deletes_the_rest(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    root = tmp_path / "scratch"
    with sessions() as session:
        team = Team(name="t")
        session.add(team)
        session.commit()
        running = job(session, team.id, "running", 2)
        finished = job(session, team.id, "succeeded", 1)
        reaped = job(session, team.id, "pending", 1)  # killed run, waiting to resume
        claiming = job(session, team.id, "queued", 1)  # its next claim is attempt 2
        live = attempt(root, running, 2)
        killed_earlier = attempt(root, running, 1)
        done = attempt(root, finished, 1)
        stale = attempt(root, reaped, 1)
        in_flight = attempt(root, claiming, 2)
        vanished = attempt(root, "job_0123abcd", 1)  # no such job (deleted with its team)
        serving = root / "serving" / "mv_1-abcd"
        serving.mkdir(parents=True)

        removed = set(sweep_scratch(session, root))

    assert removed == {killed_earlier, done.parent, stale, vanished.parent}
    assert live.exists() and in_flight.exists() and serving.exists()
    assert not done.parent.exists() and not stale.exists() and not killed_earlier.exists()
    assert (root / reaped).is_dir()  # the job's own directory stays until the job ends


def test_a_run_that_ends_the_job_takes_the_whole_job_directory(tmp_path: Path) -> None:
    root = tmp_path / "scratch"
    mine, left_by_a_killed_run = attempt(root, "job_01", 2), attempt(root, "job_01", 1)
    release_scratch(root, "job_01", 2, job_ended=False)
    assert not mine.exists() and left_by_a_killed_run.exists()
    release_scratch(root, "job_01", 3, job_ended=True)
    assert not (root / "job_01").exists()
