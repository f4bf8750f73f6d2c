"""What only the folder backend can show: where files land and what a reader never sees."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from storage.objects.base import ObjectStoreError
from storage.objects.filesystem import TEMP_PREFIX, FilesystemStore


def test_keys_map_to_paths_under_the_root(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "root")
    store.put("teams/t/datasets/d/train.conll", io.BytesIO(b"data"))
    assert (tmp_path / "root/teams/t/datasets/d/train.conll").read_bytes() == b"data"
    assert store.url == (tmp_path / "root").as_uri()


def test_a_key_escaping_the_root_writes_nothing_outside_it(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "root")
    with pytest.raises(ObjectStoreError):
        store.put("../outside", io.BytesIO(b"x"))
    with pytest.raises(ObjectStoreError):
        store.put(str(tmp_path / "abs"), io.BytesIO(b"x"))
    with pytest.raises(ObjectStoreError):
        list(store.list("../"))
    assert list(tmp_path.iterdir()) == []  # validation happens before anything is created


def test_in_flight_temp_files_are_not_listed(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    store.put("d/real", io.BytesIO(b"x"))
    (tmp_path / "d" / f"{TEMP_PREFIX}abc").write_bytes(b"half an upload")
    assert [i.key for i in store.list("d/")] == ["d/real"]
    with pytest.raises(ObjectStoreError):
        store.put(f"d/{TEMP_PREFIX}abc", io.BytesIO(b"x"))


def test_delete_prunes_empty_directories_but_not_the_root(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path / "root")
    store.put("a/b/c/obj", io.BytesIO(b"x"))
    store.put("a/keep", io.BytesIO(b"x"))
    store.delete("a/b/c/obj")
    assert not (tmp_path / "root/a/b").exists()
    assert (tmp_path / "root/a/keep").exists()
    store.delete("a/keep")
    assert (tmp_path / "root").is_dir() and not any((tmp_path / "root").iterdir())
