"""The OpenAI fine-tuning API over tunepool's own datasets and jobs.

Code written against ``client.files.create`` and ``client.fine_tuning.jobs.*`` runs
unchanged with ``base_url=<tunepool>/v1`` and a team key as ``api_key``. A file is a
tunepool dataset (CoNLL or JSONL token-classification data, checked on upload), a
fine-tuning job is a tunepool job. Both calls use the checks of tunepool's own routes
(``api.datasets.add_dataset``; ``api.jobs.checked_finetune``, then the job factory),
so validation, quotas, admission and errors are exactly theirs, fields named as
OpenAI names them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import ValidationError
from sqlalchemy import select

from api import datasets as tp_datasets
from api import jobs as tp_jobs
from api.auth import requires
from api.commit_answer import commit_with_answer
from api.context import db, team_id
from api.errors import ApiError, from_validation, invalid, not_found
from api.openai_files import upload_kind
from api.openai_jobs import estimated_finish
from api.openai_objects import (
    FineTuningCheckpointList,
    FineTuningEventList,
    FineTuningJob,
    FineTuningJobList,
    OpenAIFile,
)
from api.openai_schemas import (
    FileUpload,
    FineTuningEventQuery,
    FineTuningJobCreate,
    FineTuningJobListQuery,
    base_learning_rate,
)
from api.openapi import documented
from api.paging import MAX_ROW_ID, query_int
from api.schemas import JobCreate
from storage.models import Checkpoint, Dataset, Job, JobEvent, ModelVersion
from storage.openai_names import name_of_job
from storage.retention import RETAINED

bp = Blueprint("openai_compat", __name__, url_prefix="/v1")

STATUS = {
    "validating": "validating_files",
    "pending": "queued",
    "queued": "queued",
    "running": "running",
    "preempting": "running",
    "cancelling": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}

_FIELDS = {
    "train_dataset": "training_file",
    "validation_dataset": "validation_file",
    "base_model": "model",
    "model_name": "suffix",
    "hyperparameters.epochs": "hyperparameters.n_epochs",
    "hyperparameters.learning_rate": "hyperparameters.learning_rate_multiplier",
    "hyperparameters.seed": "seed",
}


@contextmanager
def _openai_fields() -> Iterator[None]:
    """Errors of tunepool's checks, with OpenAI's names for the fields at fault."""
    try:
        yield
    except ValidationError as exc:
        raise _renamed(from_validation(exc)) from None
    except ApiError as exc:
        raise _renamed(exc) from None


def _renamed(exc: ApiError) -> ApiError:
    field = _FIELDS.get(exc.field or "", exc.field)
    message = exc.message.replace(exc.field or "\0", field or "") if exc.field else exc.message
    return ApiError(exc.status, exc.code, message, field, **exc.extra)


# -- files ----------------------------------------------------------------------------


# A dataset's status as OpenAI's file statuses: checked by a worker -> processed.
FILE_STATUS = {"validating": "uploaded", "ready": "processed", "failed": "error"}


def file_json(ds: Dataset) -> dict[str, Any]:
    details = ds.status_details or {}
    line = details.get("line")
    problem = details.get("message")
    return {
        "id": ds.id,
        "object": "file",
        "bytes": ds.size,
        "created_at": int(ds.created_at),
        "filename": f"{ds.name}.{'jsonl' if ds.task == 'causal-lm' else ds.format}",
        "purpose": "fine-tune",
        "status": FILE_STATUS.get(ds.status, ds.status),
        "status_details": (f"line {line}: {problem}" if line is not None else problem)
        if problem
        else None,
    }


@bp.post("/files")
@documented({200: OpenAIFile}, (400, 403, 413, 422), tag="OpenAI: files", form=FileUpload)
@requires("member")
def upload_file() -> tuple[Response, int]:
    """Upload a fine-tuning file (OpenAI files API): chat JSONL, or CoNLL or JSONL
    token-classification data (api.openai_files.upload_kind tells them apart)."""
    purpose = request.form.get("purpose", "")
    if purpose != "fine-tune":
        raise invalid("purpose", "only 'fine-tune' files are kept here")
    upload = request.files.get("file")
    if upload is None:
        raise invalid("file", "attach the data as a multipart field named 'file'")
    task, fmt = upload_kind(upload.stream)
    stem = Path(upload.filename or "data").stem
    name = re.sub(r"[^A-Za-z0-9._-]", "-", stem).lstrip("._-")[:120] or "data"
    with _openai_fields():
        dataset = tp_datasets.add_dataset(task, fmt, name, upload.stream)
    answer = commit_with_answer(db(), lambda: file_json(dataset), 200)
    tp_datasets.request_check(dataset.id)
    return answer


@bp.get("/files/<file_id>")
@documented({200: OpenAIFile}, (404,), tag="OpenAI: files")
def show_file(file_id: str) -> Response:
    """A fine-tuning file (a tunepool dataset)."""
    return jsonify(file_json(tp_datasets.owned_dataset(file_id)))


# -- fine-tuning jobs -------------------------------------------------------------------


def _fine_tuned_model(job: Job) -> str | None:
    if not job.model_version_id:
        return None
    if job.task == "causal-lm":  # OpenAI's own form: ft:<base>:<team>:<suffix>:<job>
        return name_of_job(db(), job)
    mv = db().get(ModelVersion, job.model_version_id)
    return f"{mv.name}:{mv.version}" if mv else None


def _trained_tokens(job: Job) -> int | None:
    """Words of the training set times the epochs run (words, not word pieces); for a
    chat fine-tune, its rendered tokens times the epochs (its dry run)."""
    if job.state != "succeeded":
        return None
    if job.task == "causal-lm":
        billed = (job.spec.get("runtime_estimate") or {}).get("billed_tokens")
        return billed if isinstance(billed, int) else None
    ds = db().get(Dataset, job.spec.get("train_dataset"))
    epochs = (job.spec.get("hyperparameters") or {}).get("epochs") or 3
    tokens = (ds.stats or {}).get("tokens") if ds else None
    return int(tokens * epochs) if isinstance(tokens, int) else None


def job_object(job: Job) -> dict[str, Any]:
    spec = job.spec or {}
    extra = spec.get("openai") or {}
    hyper = spec.get("hyperparameters") or {}
    lr = hyper.get("learning_rate")
    chosen = {
        "n_epochs": hyper.get("epochs", "auto"),
        "batch_size": hyper.get("batch_size", "auto"),
        "learning_rate_multiplier": lr / base_learning_rate(job.task) if lr else "auto",
    }
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": int(job.created_at),
        "finished_at": int(job.finished_at) if job.finished_at else None,
        "estimated_finish": estimated_finish(job),
        "model": spec.get("base_model"),
        "fine_tuned_model": _fine_tuned_model(job),
        "organization_id": job.team_id,
        "status": STATUS.get(job.state, job.state),
        "training_file": spec.get("train_dataset"),
        "validation_file": spec.get("validation_dataset"),
        "result_files": [],
        "trained_tokens": _trained_tokens(job),
        "error": {"code": "job_failed", "message": job.error, "param": None}
        if job.state == "failed"
        else None,
        "hyperparameters": chosen,
        "method": {"type": "supervised", "supervised": {"hyperparameters": chosen}},
        "seed": hyper.get("seed", extra.get("seed")),
        "user_provided_suffix": extra.get("suffix"),
        "metadata": extra.get("metadata"),
        "integrations": [],
    }


def _owned(job_id: str) -> Job:
    job = db().get(Job, job_id)
    if job is None or job.team_id != team_id() or job.type != "finetune":
        raise not_found("fine-tuning job", job_id)
    return job


@bp.post("/fine_tuning/jobs")
@documented(
    {200: FineTuningJob}, (400, 403, 409, 422), tag="OpenAI: fine-tuning", json=FineTuningJobCreate
)
@requires("member")
def create_job() -> tuple[Response, int]:
    """Create a fine-tuning job (OpenAI API), run as a tunepool fine-tune of the training
    file's task: causal-lm for chat files, token-classification otherwise."""
    spec = FineTuningJobCreate.model_validate(request.get_json(silent=True) or {})
    # The training file's kind decides the job's: chat data makes a causal-lm fine-tune.
    with _openai_fields():
        task = tp_datasets.owned_dataset_task(spec.training_file, "train_dataset")
    chosen = spec.chosen_hyperparameters()
    hyper: dict[str, Any] = {}
    if isinstance(chosen.n_epochs, int):
        hyper["epochs"] = chosen.n_epochs
    if isinstance(chosen.batch_size, int):
        hyper["batch_size"] = chosen.batch_size
    if isinstance(chosen.learning_rate_multiplier, float | int):
        hyper["learning_rate"] = base_learning_rate(task) * chosen.learning_rate_multiplier
    if spec.seed is not None:
        hyper["seed"] = spec.seed
    body = {
        "type": "finetune",
        "task": task,
        "base_model": spec.model,
        "train_dataset": spec.training_file,
        "validation_dataset": spec.validation_file,
        "hyperparameters": hyper,
        "model_name": f"ft-{spec.suffix}" if spec.suffix else None,
    }
    openai = {"suffix": spec.suffix, "metadata": spec.metadata, "seed": spec.seed}
    with _openai_fields():
        checked = tp_jobs.checked_finetune(JobCreate.model_validate(body), openai)
    return tp_jobs.accept(db(), checked, job_object, 200)


@bp.get("/fine_tuning/jobs")
@documented(
    {200: FineTuningJobList}, (422,), tag="OpenAI: fine-tuning", query=FineTuningJobListQuery
)
def list_jobs() -> Response:
    """The team's fine-tuning jobs, newest first (``after`` = the last id seen)."""
    limit = query_int("limit", 20, 1, 100)
    query = select(Job).where(Job.team_id == team_id(), Job.type == "finetune")
    if request.args.get("after"):
        query = query.where(Job.id < request.args["after"])
    rows = db().scalars(query.order_by(Job.id.desc()).limit(limit + 1)).all()
    return jsonify(
        {
            "object": "list",
            "data": [job_object(j) for j in rows[:limit]],
            "has_more": len(rows) > limit,
        }
    )


@bp.get("/fine_tuning/jobs/<job_id>")
@documented({200: FineTuningJob}, (404,), tag="OpenAI: fine-tuning")
def retrieve_job(job_id: str) -> Response:
    """One fine-tuning job."""
    return jsonify(job_object(_owned(job_id)))


@bp.post("/fine_tuning/jobs/<job_id>/cancel")
@documented({200: FineTuningJob}, (403, 404, 409), tag="OpenAI: fine-tuning")
@requires("member")
def cancel_job(job_id: str) -> Response:
    """Cancel a fine-tuning job (tunepool's cancel: at once, or after a checkpoint)."""
    _owned(job_id)
    tp_jobs.cancel(job_id)
    db().expire_all()
    return jsonify(job_object(_owned(job_id)))


def event_object(e: JobEvent) -> dict[str, Any]:
    data = e.data or {}
    if e.kind == "state":
        message = f"Job {STATUS.get(e.new_state or '', e.new_state)}: {e.reason}"
        level = "error" if e.new_state == "failed" else "info"
        kind = "message"
    elif e.kind == "progress":
        message = f"Step {data.get('step')}: training loss={data.get('loss')}"
        level, kind = "info", "metrics"
        data = {"step": data.get("step"), "train_loss": data.get("loss"), **data}
    elif e.kind == "evaluation":
        message = f"Epoch {data.get('epoch')} evaluated"
        level, kind = "info", "metrics"
    else:
        message, level, kind = f"{e.kind}: {data}", "info", "message"
    return {
        "object": "fine_tuning.job.event",
        "id": f"ftevent-{e.id}",
        "created_at": int(e.at),
        "level": level,
        "message": message,
        "data": data,
        "type": kind,
    }


@bp.get("/fine_tuning/jobs/<job_id>/events")
@documented(
    {200: FineTuningEventList}, (404, 422), tag="OpenAI: fine-tuning", query=FineTuningEventQuery
)
def list_events(job_id: str) -> Response:
    """The job's events, newest first, as OpenAI lists them (``after`` = an event id seen)."""
    _owned(job_id)
    limit = query_int("limit", 20, 1, 1000)
    # Log lines and housekeeping (checkpoint retention) are not OpenAI job events; the
    # native /v1/jobs/<id>/events and /logs show them.
    query = select(JobEvent).where(
        JobEvent.job_id == job_id, JobEvent.kind.not_in(("log", RETAINED))
    )
    after = (request.args.get("after") or "").removeprefix("ftevent-")
    if after:
        query = query.where(JobEvent.id < query_int("after", 0, 0, MAX_ROW_ID, raw=after))
    rows = db().scalars(query.order_by(JobEvent.id.desc()).limit(limit + 1)).all()
    return jsonify(
        {
            "object": "list",
            "data": [event_object(e) for e in rows[:limit]],
            "has_more": len(rows) > limit,
        }
    )


@bp.get("/fine_tuning/jobs/<job_id>/checkpoints")
@documented({200: FineTuningCheckpointList}, (404,), tag="OpenAI: fine-tuning")
def list_checkpoints(job_id: str) -> Response:
    """The job's kept checkpoints, newest first."""
    job = _owned(job_id)
    rows = (
        db()
        .scalars(
            select(Checkpoint).where(Checkpoint.job_id == job.id).order_by(Checkpoint.step.desc())
        )
        .all()
    )
    data = [
        {
            "object": "fine_tuning.job.checkpoint",
            "id": f"ftckpt-{c.id}",
            "created_at": int(c.created_at),
            "fine_tuned_model_checkpoint": f"{job.id}:step-{c.step}",
            "fine_tuning_job_id": job.id,
            "step_number": c.step,
            "metrics": {"step": c.step, **(c.metrics or {})},
        }
        for c in rows
    ]
    return jsonify({"object": "list", "data": data, "has_more": False})
