"""OpenAI's names of fine-tuned models: ``ft:<base>:<team>:<suffix>:<job id>``.

A chat fine-tune made through the OpenAI-compatible API is named as OpenAI names its
own (``ft:gpt-4o-mini:my-org:support-bot:ftjob-abc``; no suffix leaves it empty), so
code that stores ``job.fine_tuned_model`` and passes it back as ``model=`` runs
unchanged. The name is derived from the job, never stored: the job id in it finds the
job, and the whole name must be that job's, so a name is only ever resolved within the
caller's team (another team's job id reads as unknown, like a missing one).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from storage.models import Job, ModelVersion, Team

PREFIX = "ft:"


@dataclass(frozen=True)
class FineTunedName:
    base: str
    team: str
    suffix: str
    job_id: str

    def __str__(self) -> str:
        return f"{PREFIX}{self.base}:{self.team}:{self.suffix}:{self.job_id}"


def parse_fine_tuned_name(name: str) -> FineTunedName | None:
    """The parts of a long ``ft:`` name; None for anything else (``ft:ner:2`` included)."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX) :].rsplit(":", 3)
    if len(parts) != 4 or not parts[0] or not parts[1] or not parts[3].startswith("job_"):
        return None
    return FineTunedName(*parts)


def name_of_job(session: Session, job: Job) -> str | None:
    """The OpenAI name of a chat fine-tune made through the OpenAI-compatible API."""
    openai = (job.spec or {}).get("openai")
    if job.task != "causal-lm" or not isinstance(openai, dict):
        return None
    team = session.get(Team, job.team_id)
    if team is None:
        return None
    base = str(job.spec.get("base_model") or "")
    return str(FineTunedName(base, team.name, openai.get("suffix") or "", job.id))


def resolve_fine_tuned(session: Session, team_id: str, name: str) -> ModelVersion | None:
    """The model version a long ``ft:`` name of the caller's team stands for, else None."""
    parsed = parse_fine_tuned_name(name)
    if parsed is None:
        return None
    job = session.get(Job, parsed.job_id)
    if job is None or job.team_id != team_id or not job.model_version_id:
        return None
    if name_of_job(session, job) != name:
        return None
    version = session.get(ModelVersion, job.model_version_id)
    return version if version is not None and version.team_id == team_id else None
