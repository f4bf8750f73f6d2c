"""POST /v1/datasets validates before storing; bad files get a 422 that names the line."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select

from storage.blobs import verify
from storage.models import Dataset, StoredObject
from storage.platform import Platform
from tests.api.conftest import KeyFactory, upload_ner


def test_upload_stores_the_file_with_its_checksum_and_returns_stats(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    created = upload_ner(client, headers)
    assert created["status"] == 201
    assert created["id"].startswith("ds_")
    assert created["stats"]["sentences"] == 20
    with platform.sessions() as session:
        ds = session.get(Dataset, created["id"])
        assert ds is not None and len(ds.sha256) == 64
        assert verify(session, platform.store, ds.object_key)
    listed = client.get("/v1/datasets", headers=headers).get_json()
    assert [d["id"] for d in listed["data"]] == [created["id"]]
    assert client.get(f"/v1/datasets/{created['id']}", headers=headers).status_code == 200


def test_malformed_conll_is_rejected_naming_the_line_and_nothing_is_stored(
    client: FlaskClient, make_key: KeyFactory, platform: Platform
) -> None:
    headers = make_key()
    bad = "Alice\tB-PER\nworks\tO\n\nBob\tI-XYZ!\nlonely\n"
    resp = upload_ner(client, headers, bad)
    assert resp["status"] == 422
    assert resp["error"]["field"] == "file"
    assert resp["error"]["line"] in (4, 5)
    assert "line" in resp["error"]["message"]
    with platform.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Dataset)) == 0
        assert session.scalar(select(func.count()).select_from(StoredObject)) == 0


def test_bad_fields_name_the_field(client: FlaskClient, make_key: KeyFactory) -> None:
    headers = make_key()
    resp = client.post("/v1/datasets", headers=headers, data={"task": "nope", "format": "conll"})
    assert resp.status_code == 422 and resp.get_json()["error"]["field"] == "task"
    resp = client.post(
        "/v1/datasets", headers=headers, data={"task": "token-classification", "format": "csv"}
    )
    assert resp.status_code == 422 and resp.get_json()["error"]["field"] == "format"
    resp = upload_ner(client, headers, name="../../etc/passwd")
    assert resp["status"] == 422 and resp["error"]["field"] == "name"
    resp = upload_ner(client, headers, text="")
    assert resp["status"] == 422 and resp["error"]["field"] == "file"


def test_viewer_cannot_upload(client: FlaskClient, make_key: KeyFactory) -> None:
    viewer = make_key("alpha", role="viewer")
    assert upload_ner(client, viewer)["status"] == 403
