"""/v1/datasets: upload (validated before anything is stored), list, show.

An upload's format is checked line by line before anything is stored (a 422 names the
line); the dataset is then ``validating`` until a worker has added the statistics that
need a tokenizer (``storage.dataset_status``).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field, JsonValue
from sqlalchemy import bindparam, select

from api import responses
from api.auth import requires
from api.commit_answer import commit_with_answer
from api.context import db, platform, team_id
from api.errors import ApiError, invalid, not_found
from api.openapi import documented
from api.paging import PageQuery, page_params, paged
from api.times import rfc3339
from storage.blobs import store_file
from storage.dataset_status import DatasetStatus
from storage.ids import new_id
from storage.layout import dataset_key
from storage.models import Dataset, table_of
from tunepool.data.chat_upload import CHAT_DATASET_FORMATS
from tunepool.messages import CHECK_DATASET_TASK, DATASET_QUEUE

log = logging.getLogger(__name__)

bp = Blueprint("datasets", __name__, url_prefix="/v1/datasets")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FORMATS = {
    "token-classification": ("conll", "jsonl"),
    # CSV/TSV with a header naming `text` and `label` (or `label` and one other column).
    "sequence-classification": ("csv", "tsv", "jsonl"),
    # Unlabeled text for continued pre-training: one document per line, or {"text"}.
    "masked-lm": ("text", "jsonl"),
    # Chat JSONL: OpenAI `messages`, ShareGPT `conversations` or Alpaca; `chat` detects it.
    "causal-lm": CHAT_DATASET_FORMATS,
}


TASKS: list[JsonValue] = list(FORMATS)
ALL_FORMATS: list[JsonValue] = [*sorted({fmt for fmts in FORMATS.values() for fmt in fmts})]


class DatasetUpload(BaseModel):
    """The multipart form of an upload; the view checks each field (``upload``)."""

    file: bytes = Field(description="the data file")
    task: str = Field(json_schema_extra={"enum": TASKS})
    format: str = Field(
        description="; ".join(f"{task}: {', '.join(fmts)}" for task, fmts in FORMATS.items()),
        json_schema_extra={"enum": ALL_FORMATS},
    )
    name: str | None = Field(
        None, pattern=NAME.pattern, description="default: the file's name without extension"
    )


def dataset_json(ds: Dataset) -> dict[str, Any]:
    return {
        "id": ds.id,
        "name": ds.name,
        "task": ds.task,
        "format": ds.format,
        "size": ds.size,
        "sha256": ds.sha256,
        "stats": ds.stats,
        # validating (the format is checked; a worker adds the word-piece statistics),
        # ready, or failed with status_details {"message", "line"}.
        "status": ds.status,
        "status_details": ds.status_details,
        "created_at": rfc3339(ds.created_at),
    }


@bp.post("")
@documented({201: responses.Dataset}, (400, 403, 413, 422), tag="datasets", form=DatasetUpload)
@requires("member")
def upload() -> tuple[Response, int]:
    """Upload a dataset: its format is checked line by line before it is stored."""
    task = (request.form.get("task") or "").strip()
    fmt = (request.form.get("format") or "").strip()
    if task not in FORMATS:
        raise invalid("task", f"must be one of {', '.join(FORMATS)}")
    if fmt not in FORMATS[task]:
        raise invalid("format", f"for {task} must be one of {', '.join(FORMATS[task])}")
    upload = request.files.get("file")
    if upload is None:
        raise invalid("file", "attach the data as a multipart field named 'file'")
    name = (request.form.get("name") or Path(upload.filename or "data").stem).strip()
    if not NAME.match(name):
        raise invalid("name", "letters, digits, '.', '_' and '-', starting with a letter or digit")
    dataset = add_dataset(task, fmt, name, upload.stream)
    answer = commit_with_answer(db(), lambda: dataset_json(dataset), 201)
    request_check(dataset.id)
    return answer


def request_check(dataset_id: str) -> None:
    """Ask a worker for the committed dataset's word-piece statistics (it leaves
    ``validating``). A message that cannot be sent leaves it validating; nothing is lost
    but the statistics, and jobs may start from it meanwhile."""
    try:
        platform().celery.send_task(CHECK_DATASET_TASK, args=[dataset_id], queue=DATASET_QUEUE)
    except Exception as exc:
        log.warning("could not ask for the check of dataset %s: %s", dataset_id, exc)


def add_dataset(task: str, fmt: str, name: str, stream: IO[bytes]) -> Dataset:
    """Check ``stream``'s data, store it and add its row to the request's session (the
    caller commits); 422 naming the file (and line) where the data is wrong. Also the
    OpenAI-compatible files route's upload."""
    from tunepool.data.chat_upload import ChatFileInvalid
    from tunepool.data.describe import describe_file
    from tunepool.data.errors import DataError

    with tempfile.TemporaryDirectory(prefix="tunepool-upload-") as tmp:
        path = Path(tmp) / f"data.{fmt}"
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        if path.stat().st_size == 0:
            raise invalid("file", "the file is empty")
        try:
            # Format and lines now, without a tokenizer; a worker adds the word pieces.
            stats = describe_file(path, task, fmt)
        except DataError as exc:
            # A chat file names every kind of unusable line it holds (problems).
            extra = {"problems": exc.problems} if isinstance(exc, ChatFileInvalid) else {}
            raise ApiError(
                422, "invalid_data", f"file: {exc}", "file", line=exc.line, **extra
            ) from None
        dataset_id = new_id("ds")
        key = dataset_key(team_id(), dataset_id, fmt)
        session = db()
        stored = store_file(session, platform().store, key, path)
        dataset = Dataset(
            id=dataset_id,
            team_id=team_id(),
            name=name,
            task=task,
            format=fmt,
            object_key=key,
            size=stored.size,
            sha256=stored.sha256,
            stats=stats,
        )
        session.add(dataset)
        return dataset


@bp.get("")
@documented({200: responses.DatasetPage}, (422,), tag="datasets", query=PageQuery)
def list_datasets() -> Response:
    """The team's datasets, newest first."""
    limit, cursor = page_params()
    query = select(Dataset).where(Dataset.team_id == team_id())
    if cursor:
        query = query.where(Dataset.id < cursor)
    rows = db().scalars(query.order_by(Dataset.id.desc()).limit(limit + 1)).all()
    return jsonify(paged([dataset_json(d) for d in rows], limit))


@bp.get("/<dataset_id>")
@documented({200: responses.Dataset}, (404,), tag="datasets")
def show(dataset_id: str) -> Response:
    """One dataset: its statistics, and its check's status."""
    return jsonify(dataset_json(owned_dataset(dataset_id)))


def owned_dataset(dataset_id: str, field: str | None = None) -> Dataset:
    """A dataset of the calling team; with ``field`` (a job's input), 422 naming it if
    there is none or its check failed."""
    ds = db().get(Dataset, dataset_id)
    if ds is None or ds.team_id != team_id():
        raise _no_such_dataset(dataset_id, field)
    if field is not None:
        _refuse_failed(dataset_id, ds.status, ds.status_details, field)
    return ds


# A job submission needs only the dataset's task and status: the whole row (its stats
# are a JSON document) as an ORM object cost twice the statement on every submit. On the
# table's columns, not the mapped attributes: a plain row needs none of the ORM's result
# handling, which cost a third of the statement's client CPU.
_DATASETS = table_of(Dataset).c
_TASK_OF_OWNED = select(_DATASETS.task, _DATASETS.status, _DATASETS.status_details).where(
    _DATASETS.id == bindparam("id"), _DATASETS.team_id == bindparam("team_id")
)


def owned_dataset_task(dataset_id: str, field: str) -> str:
    """The task of a usable dataset of the calling team; 422 naming ``field`` if there is
    none or its check failed (a dataset still ``validating`` is usable)."""
    row = db().execute(_TASK_OF_OWNED, {"id": dataset_id, "team_id": team_id()}).first()
    if row is None:
        raise _no_such_dataset(dataset_id, field)
    _refuse_failed(dataset_id, row.status, row.status_details, field)
    return str(row.task)


def _refuse_failed(
    dataset_id: str, status: str, details: dict[str, Any] | None, field: str
) -> None:
    if status != DatasetStatus.FAILED:
        return
    details = details or {}
    line = details.get("line")
    raise invalid(
        field,
        f"dataset {dataset_id} failed its check: {details.get('message', 'unreadable')}",
        **({"line": line} if line is not None else {}),
    )


def _no_such_dataset(dataset_id: str, field: str | None) -> ApiError:
    if field:
        return invalid(field, f"dataset {dataset_id} not found")
    return not_found("dataset", dataset_id)
