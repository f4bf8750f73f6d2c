"""Uploads for every training task through the real API, and the validation report."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from tests.api.conftest import KeyFactory


def upload(
    client: FlaskClient,
    headers: dict[str, str],
    task: str,
    fmt: str,
    body: bytes | str,
    name: str = "data",
) -> tuple[int, dict]:
    data = body.encode("utf-8") if isinstance(body, str) else body
    resp = client.post(
        "/v1/datasets",
        headers=headers,
        content_type="multipart/form-data",
        data={"task": task, "format": fmt, "name": name, "file": (io.BytesIO(data), name)},
    )
    return resp.status_code, resp.get_json()


SMS_LIKE = "Label\tSMS\n" + "".join(
    f"{'spam' if i % 4 == 0 else 'ham'}\tmessage number {i}\n" for i in range(40)
)


def test_classification_upload_reports_labels_and_a_job_validates(
    client: FlaskClient, make_key: KeyFactory
) -> None:
    headers = make_key()
    status, dataset = upload(client, headers, "sequence-classification", "tsv", SMS_LIKE)
    assert status == 201, dataset
    assert dataset["stats"]["labels"] == {"ham": 30, "spam": 10}
    resp = client.post(
        "/v1/jobs",
        headers=headers,
        json={
            "task": "sequence-classification",
            "train_dataset": dataset["id"],
            "validate_only": True,
        },
    )
    assert resp.status_code == 200 and resp.get_json()["valid"] is True
    # A dataset of one task cannot train another.
    resp = client.post(
        "/v1/jobs",
        headers=headers,
        json={"task": "token-classification", "train_dataset": dataset["id"]},
    )
    assert resp.status_code == 422


def test_masked_lm_corpus_upload(client: FlaskClient, make_key: KeyFactory) -> None:
    headers = make_key()
    status, dataset = upload(client, headers, "masked-lm", "text", "one doc\n\ntwo doc\n")
    assert status == 201, dataset
    assert dataset["stats"]["documents"] == 2
    status, body = upload(client, headers, "masked-lm", "csv", "text\nx\n")
    assert status == 422 and body["error"]["field"] == "format"
