"""/v1/datasets: upload (validated before anything is stored), list, show."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import bindparam, select

from api.auth import requires
from api.chat_datasets import CHAT_FORMATS, chat_dataset_stats
from api.commit_answer import commit_with_answer
from api.context import db, platform, team_id
from api.errors import ApiError, invalid, not_found
from api.paging import page_params, paged
from storage.blobs import store_file
from storage.ids import new_id
from storage.layout import dataset_key
from storage.models import Dataset

bp = Blueprint("datasets", __name__, url_prefix="/v1/datasets")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FORMATS = {
    "token-classification": ("conll", "jsonl"),
    # CSV/TSV with a header naming `text` and `label` (or `label` and one other column).
    "sequence-classification": ("csv", "tsv", "jsonl"),
    # Unlabeled text for continued pre-training: one document per line, or {"text"}.
    "masked-lm": ("text", "jsonl"),
    # Chat JSONL: OpenAI `messages`, ShareGPT `conversations` or Alpaca; `chat` detects it.
    "causal-lm": CHAT_FORMATS,
}


def dataset_json(ds: Dataset) -> dict[str, Any]:
    return {
        "id": ds.id,
        "name": ds.name,
        "task": ds.task,
        "format": ds.format,
        "size": ds.size,
        "sha256": ds.sha256,
        "stats": ds.stats,
        "created_at": ds.created_at,
    }


def inspect(path: Path, task: str, fmt: str) -> dict[str, Any]:
    """Parse and describe the file; DataError (naming the line) if it is malformed.

    The file is read an example at a time and described in one pass, so an upload is
    checked in bounded memory whatever its size.
    """
    from tunepool.data.errors import DataError
    from tunepool.data.findings import findings_in_file
    from tunepool.data.stats import token_dataset_stats
    from tunepool.data.text_files import iter_text_documents, iter_text_examples
    from tunepool.data.text_stats import corpus_stats, text_dataset_stats
    from tunepool.data.token_files import iter_token_examples

    stats: dict[str, Any]
    if task == "sequence-classification":
        stats = text_dataset_stats(iter_text_examples(path, fmt))
        counted, nothing = stats["examples"], "the file holds no examples"
    elif task == "causal-lm":
        stats = chat_dataset_stats(path, fmt)
        counted, nothing = stats["examples"], "the file holds no conversations"
    elif task == "masked-lm":
        stats = corpus_stats(iter_text_documents(path, fmt))
        counted, nothing = stats["documents"], "the file holds no documents"
    else:
        from worker.training.validation import base_model_tokenizer

        # Word pieces of the default base model at its default max length; a job's
        # validate_only report recounts with the job's own model and settings.
        stats = token_dataset_stats(
            iter_token_examples(path, fmt), base_model_tokenizer("all-MiniLM-L6-v2"), 128
        )
        counted, nothing = stats["sentences"], "the file holds no sentences"
    if not counted:
        raise DataError(nothing)
    stats["file"] = findings_in_file(path)
    return stats


@bp.post("")
@requires("member")
def upload() -> tuple[Response, int]:
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
    return commit_with_answer(db(), lambda: dataset_json(dataset), 201)


def add_dataset(task: str, fmt: str, name: str, stream: IO[bytes]) -> Dataset:
    """Check ``stream``'s data, store it and add its row to the request's session (the
    caller commits); 422 naming the file (and line) where the data is wrong. Also the
    OpenAI-compatible files route's upload."""
    from tunepool.data.errors import DataError

    with tempfile.TemporaryDirectory(prefix="tunepool-upload-") as tmp:
        path = Path(tmp) / f"data.{fmt}"
        with path.open("wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        if path.stat().st_size == 0:
            raise invalid("file", "the file is empty")
        try:
            stats = inspect(path, task, fmt)
        except DataError as exc:
            raise ApiError(422, "invalid_data", f"file: {exc}", "file", line=exc.line) from None
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
def list_datasets() -> Response:
    limit, cursor = page_params()
    query = select(Dataset).where(Dataset.team_id == team_id())
    if cursor:
        query = query.where(Dataset.id < cursor)
    rows = db().scalars(query.order_by(Dataset.id.desc()).limit(limit + 1)).all()
    return jsonify(paged([dataset_json(d) for d in rows], limit))


@bp.get("/<dataset_id>")
def show(dataset_id: str) -> Response:
    return jsonify(dataset_json(owned_dataset(dataset_id)))


def owned_dataset(dataset_id: str, field: str | None = None) -> Dataset:
    ds = db().get(Dataset, dataset_id)
    if ds is None or ds.team_id != team_id():
        raise _no_such_dataset(dataset_id, field)
    return ds


# A job submission needs only the dataset's task: the whole row (its stats are a JSON
# document) as an ORM object cost twice the statement on every submit.
_TASK_OF_OWNED = select(Dataset.task).where(
    Dataset.id == bindparam("id"), Dataset.team_id == bindparam("team_id")
)


def owned_dataset_task(dataset_id: str, field: str) -> str:
    """The task of a dataset of the calling team; 422 naming ``field`` if there is none."""
    task = db().execute(_TASK_OF_OWNED, {"id": dataset_id, "team_id": team_id()}).scalar()
    if task is None:
        raise _no_such_dataset(dataset_id, field)
    return str(task)


def _no_such_dataset(dataset_id: str, field: str | None) -> ApiError:
    if field:
        return invalid(field, f"dataset {dataset_id} not found")
    return not_found("dataset", dataset_id)
