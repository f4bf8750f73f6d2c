"""The job factory is the one maker of job rows, and refuses as a value, not an exception."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy.orm import Session

from storage.job_factory import JobOrder, create
from storage.models import Job, JobEvent, Team
from storage.refusals import Refusal
from tunepool.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("commands", "api", "scheduler", "storage", "worker", "tunepool", "bench")


def _job_constructions() -> list[str]:
    """Every ``Job(...)`` call (by name or as ``models.Job(...)``) in production code."""
    found = []
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == "Job":
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_job_factory_constructs_a_job_row() -> None:
    places = _job_constructions()
    assert len(places) == 1 and places[0].startswith("storage/job_factory.py:"), places


def test_no_route_is_invoked_by_faking_a_request() -> None:
    """The OpenAI-compatible routes call the same checks and the factory, not a view run
    in a made-up request (``test_request_context``)."""
    faked = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in PRODUCTION
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "test_request_context"
    ]
    assert faked == []


def _team(session: Session, **values: object) -> Team:
    team = Team(name="factory-team", **values)
    session.add(team)
    session.flush()
    return team


def test_create_writes_the_row_and_its_first_event(session: Session) -> None:
    team = _team(session)
    order = JobOrder(team_id=team.id, type="evaluate", task="text-classification", spec={})
    job = create(session, Settings(), order, accepted="accepted: test")
    assert isinstance(job, Job) and job.state == "pending" and job.max_attempts >= 1
    events = session.query(JobEvent).filter_by(job_id=job.id).all()
    assert [(e.kind, e.new_state, e.reason) for e in events] == [
        ("state", "pending", "accepted: test")
    ]


def test_refusals_are_values_and_write_nothing(session: Session) -> None:
    team = _team(session, queue_state="draining")
    order = JobOrder(team_id=team.id, type="evaluate", task="text-classification", spec={})
    found = create(session, Settings(), order)
    assert isinstance(found, Refusal) and (found.status, found.code) == (409, "draining")
    bad_base = JobOrder(
        team_id=team.id, type="finetune", task="ner", spec={}, base_model="../etc/passwd"
    )
    found = create(session, Settings(), bad_base)
    assert isinstance(found, Refusal) and found.field == "base_model"
    assert session.query(Job).count() == 0


def test_a_builtin_base_model_of_the_wrong_kind_is_refused_at_submit(session: Session) -> None:
    team = _team(session)
    for task, base in (("causal-lm", "all-MiniLM-L6-v2"), ("ner", "SmolLM2-135M-Instruct")):
        order = JobOrder(team_id=team.id, type="finetune", task=task, spec={}, base_model=base)
        found = create(session, Settings(), order)
        assert isinstance(found, Refusal) and found.field == "base_model", (task, found)
    chat = JobOrder(
        team_id=team.id,
        type="finetune",
        task="causal-lm",
        spec={},
        base_model="SmolLM2-135M-Instruct",
    )
    assert isinstance(create(session, Settings(), chat), Job)
