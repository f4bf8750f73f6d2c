"""OpenAI's files API beyond upload and retrieve: ``client.files.list()``, and which kind
of tunepool dataset an uploaded fine-tuning file becomes.

A file is a dataset of the caller's team (api.openai_compat.file_json). An upload is a
chat file when its first line is a JSON object in one of the chat formats (OpenAI
``messages``, ShareGPT ``conversations``, Alpaca ``instruction``/``output``): it becomes
a ``causal-lm`` dataset, checked line by line (api.chat_datasets); otherwise JSONL or
CoNLL token-classification data, as before.
"""

from __future__ import annotations

import json
import re
from typing import IO

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from api.context import db, team_id
from api.errors import invalid
from api.openai_objects import FileList
from api.openai_schemas import FileListQuery
from api.openapi import documented
from api.paging import query_int
from storage.models import Dataset
from tunepool.data.chat import detect_chat_format

bp = Blueprint("openai_files", __name__, url_prefix="/v1")

# How far the first line is read to tell a chat file from token data.
_FIRST_LINE = 1024 * 1024
# Keys of the chat formats, for a first line that is not valid JSON (the chat reader
# then names it): a broken chat file gets the chat reader's error, not the NER one's.
_CHAT_KEYS = re.compile(rb'"(messages|conversations|instruction)"\s*:')


def upload_kind(stream: IO[bytes]) -> tuple[str, str]:
    """(task, format) of an uploaded fine-tuning file, from its first non-blank line;
    the stream is rewound."""
    start = stream.tell()
    line = b""
    while not line.strip():
        line = stream.readline(_FIRST_LINE)
        if not line:
            break
    stream.seek(start)
    text = line.lstrip(b"\xef\xbb\xbf").strip()
    if not text.startswith(b"{"):
        return "token-classification", "conll"
    try:
        record = json.loads(text)
    except ValueError:
        chat = _CHAT_KEYS.search(text) is not None
    else:
        chat = isinstance(record, dict) and detect_chat_format(record) is not None
    return ("causal-lm", "chat") if chat else ("token-classification", "jsonl")


@bp.get("/files")
@documented({200: FileList}, (422,), tag="OpenAI: files", query=FileListQuery)
def list_files() -> Response:
    """The team's files (datasets), newest first unless ``order=asc``; ``after`` pages."""
    from api.openai_compat import file_json

    limit = query_int("limit", 100, 1, 10_000)
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("order", "asc or desc")
    purpose = request.args.get("purpose")
    if purpose not in (None, "", "fine-tune"):
        # Only fine-tuning files are kept here: no file has another purpose.
        return jsonify({"object": "list", "data": [], "has_more": False})
    query = select(Dataset).where(Dataset.team_id == team_id())
    after = request.args.get("after")
    if after:
        query = query.where(Dataset.id < after if order == "desc" else Dataset.id > after)
    ordering = Dataset.id.desc() if order == "desc" else Dataset.id.asc()
    rows = db().scalars(query.order_by(ordering).limit(limit + 1)).all()
    return jsonify(
        {
            "object": "list",
            "data": [file_json(ds) for ds in rows[:limit]],
            "has_more": len(rows) > limit,
            "first_id": rows[0].id if rows else None,
            "last_id": rows[:limit][-1].id if rows else None,
        }
    )
