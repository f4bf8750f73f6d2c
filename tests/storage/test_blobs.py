"""Checksummed storage: sizes and SHA-256 recorded in SQL, verified on every download."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import blobs
from storage.blobs import ChecksumMismatch
from storage.models import StoredObject
from storage.objects.base import ObjectNotFound, ObjectStore
from tests.storage.conftest import MiB, PatternStream, overwrite_behind_store, pattern_sha256


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_store_stream_records_size_and_sha256_while_streaming(
    session: Session, store: ObjectStore
) -> None:
    size = 17 * MiB  # two parts on S3
    row = blobs.store_stream(
        session, store, "teams/t/datasets/d", io.BufferedReader(PatternStream(size))
    )
    assert (row.size, row.sha256) == (size, pattern_sha256(size))
    stored = session.scalars(select(StoredObject)).one()
    assert (stored.key, stored.size, stored.sha256) == ("teams/t/datasets/d", size, row.sha256)


def test_storing_a_key_again_updates_its_one_row(session: Session, store: ObjectStore) -> None:
    blobs.store_stream(session, store, "k", io.BytesIO(b"first"))
    row = blobs.store_stream(session, store, "k", io.BytesIO(b"second!"))
    rows = session.scalars(select(StoredObject)).all()
    assert rows == [row]
    assert (row.size, row.sha256) == (7, hashlib.sha256(b"second!").hexdigest())


def test_fetch_file_verifies_and_writes_dest(
    session: Session, store: ObjectStore, tmp_path: Path
) -> None:
    src = tmp_path / "weights.bin"
    src.write_bytes(b"w" * 1000)
    blobs.store_file(session, store, "models/m/1/weights.bin", src)
    row = blobs.fetch_file(session, store, "models/m/1/weights.bin", tmp_path / "out" / "w.bin")
    assert (tmp_path / "out" / "w.bin").read_bytes() == b"w" * 1000
    assert row.sha256 == hashlib.sha256(b"w" * 1000).hexdigest()
    assert blobs.verify(session, store, "models/m/1/weights.bin")


@pytest.mark.parametrize("corrupt", [b"x" * 1000, b"w" * 999, b"w" * 1001])
def test_a_corrupted_object_is_refused_and_leaves_no_file(
    session: Session, store: ObjectStore, tmp_path: Path, corrupt: bytes
) -> None:
    blobs.store_stream(session, store, "ckpt/step-1/model.bin", io.BytesIO(b"w" * 1000))
    overwrite_behind_store(store, "ckpt/step-1/model.bin", corrupt)
    dest_dir = tmp_path / "dest"
    with pytest.raises(ChecksumMismatch) as err:
        blobs.fetch_file(session, store, "ckpt/step-1/model.bin", dest_dir / "model.bin")
    assert err.value.key == "ckpt/step-1/model.bin"
    assert err.value.expected == hashlib.sha256(b"w" * 1000).hexdigest()
    assert err.value.actual == hashlib.sha256(corrupt).hexdigest()
    assert list(dest_dir.iterdir()) == []  # neither the file nor a temp file
    assert not blobs.verify(session, store, "ckpt/step-1/model.bin")


def test_a_failed_fetch_keeps_the_previous_dest(
    session: Session, store: ObjectStore, tmp_path: Path
) -> None:
    blobs.store_stream(session, store, "k", io.BytesIO(b"good"))
    overwrite_behind_store(store, "k", b"evil")
    (tmp_path / "dest").write_bytes(b"older copy")
    with pytest.raises(ChecksumMismatch):
        blobs.fetch_file(session, store, "k", tmp_path / "dest")
    assert (tmp_path / "dest").read_bytes() == b"older copy"


def test_missing_rows_and_missing_objects(
    session: Session, store: ObjectStore, tmp_path: Path
) -> None:
    store.put("unrecorded", io.BytesIO(b"x"))
    with pytest.raises(ObjectNotFound):
        blobs.fetch_file(session, store, "unrecorded", tmp_path / "a")
    with pytest.raises(ObjectNotFound):
        blobs.verify(session, store, "unrecorded")
    blobs.store_stream(session, store, "lost", io.BytesIO(b"x"))
    store.delete("lost")
    assert not blobs.verify(session, store, "lost")
    with pytest.raises(ObjectNotFound):
        blobs.fetch_file(session, store, "lost", tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_store_dir_and_fetch_dir_round_trip(
    session: Session, store: ObjectStore, tmp_path: Path
) -> None:
    files = {"config.json": b"{}", "model.safetensors": b"m" * 5000, "tok/vocab.txt": b"a\nb\n"}
    _write_tree(tmp_path / "ckpt", files)
    _write_tree(tmp_path / "other", {"x": b"step 10"})
    rows = blobs.store_dir(session, store, "jobs/j/checkpoints/step-1/", tmp_path / "ckpt")
    blobs.store_dir(session, store, "jobs/j/checkpoints/step-10", tmp_path / "other")
    assert [r.key for r in rows] == [
        "jobs/j/checkpoints/step-1/config.json",
        "jobs/j/checkpoints/step-1/model.safetensors",
        "jobs/j/checkpoints/step-1/tok/vocab.txt",
    ]
    fetched = blobs.fetch_dir(session, store, "jobs/j/checkpoints/step-1", tmp_path / "restored")
    assert [r.key for r in fetched] == [r.key for r in rows]  # step-10 is not under step-1
    restored = {
        p.relative_to(tmp_path / "restored").as_posix(): p.read_bytes()
        for p in (tmp_path / "restored").rglob("*")
        if p.is_file()
    }
    assert restored == files


def test_delete_prefix_removes_objects_and_rows_of_that_prefix_only(
    session: Session, store: ObjectStore, tmp_path: Path
) -> None:
    for key in ["ck/step-1/a", "ck/step-1/b/c", "ck/step-10/a"]:
        blobs.store_stream(session, store, key, io.BytesIO(key.encode()))
    store.put("ck/step-1/orphan", io.BytesIO(b"uploaded, never committed"))
    assert blobs.delete_prefix(session, store, "ck/step-1") == 2 + 1  # two rows, one orphan
    assert [i.key for i in store.list("ck/")] == ["ck/step-10/a"]
    assert session.scalars(select(StoredObject.key)).all() == ["ck/step-10/a"]
    with pytest.raises(ValueError):
        blobs.delete_prefix(session, store, "/")


def test_rows_reach_the_database_only_when_the_caller_commits(
    session: Session, store: ObjectStore
) -> None:
    blobs.store_stream(session, store, "k", io.BytesIO(b"x"))
    session.rollback()
    assert session.get(StoredObject, "k") is None
    blobs.store_stream(session, store, "k", io.BytesIO(b"x"))
    session.commit()
    session.expunge_all()
    assert session.get(StoredObject, "k") is not None
