"""An error quotes at most a short excerpt of the input at fault: a 50 MB single-line junk
upload got a 52 MB error response (issue 20, item 19)."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from tests.api.conftest import KeyFactory, upload_ner

# An error is a message naming the line or field and a little of the input; never the input.
MAX_ERROR_BYTES = 2048


def _upload(
    client: FlaskClient, headers: dict[str, str], data: bytes, task: str, fmt: str
) -> tuple[int, bytes]:
    resp = client.post(
        "/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={"task": task, "format": fmt, "name": "junk", "file": (io.BytesIO(data), "j")},
    )
    return resp.status_code, resp.get_data()


def test_uploads_with_huge_lines_answer_a_short_error(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    junk = b"x" * 600_000
    cases = [
        # One line of junk, as the report had it (shorter: the cap is the same).
        (junk * 5, "token-classification", "conll"),
        (b"ok O\n" + junk + b"\n", "token-classification", "conll"),  # one column
        (b"ok " + junk + b"\n", "token-classification", "conll"),  # a tag
        (b'{"tokens": ["a"], "tags": ["' + junk + b'"]}\n', "token-classification", "jsonl"),
        (b"label," + junk + b"\nx,y\n", "sequence-classification", "csv"),  # the header
    ]
    for data, task, fmt in cases:
        status, body = _upload(client, headers, data, task, fmt)
        assert status == 422, (data[:40], body[:300])
        assert len(body) < MAX_ERROR_BYTES, (data[:40], len(body), body[:300])
        assert b"line" in body


def test_json_errors_quote_a_short_excerpt(client: FlaskClient, make_key: KeyFactory) -> None:
    headers = make_key()
    ds = upload_ner(client, headers)["id"]
    key = "k" * 1_000_000
    for body in (
        {"task": "token-classification", "train_dataset": ds, key: 1},
        {"task": "token-classification", "train_dataset": ds, "hyperparameters": {key: 1}},
        {"task": "token-classification", "train_dataset": "x" * 1_000_000},
        {"task": "token-classification", "train_dataset": ds, "priority": key},
    ):
        resp = client.post("/v1/jobs", headers=headers, json=body)
        assert resp.status_code == 422, resp.get_data()[:300]
        assert len(resp.get_data()) < MAX_ERROR_BYTES, resp.get_data()[:300]
