"""Behaviour every object store must have; each test runs on the folder and on S3."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from storage.objects.base import ObjectNotFound, ObjectStore, ObjectStoreError
from tests.storage.conftest import MiB, PatternStream, pattern_sha256, stream_sha256


def test_a_multipart_sized_stream_round_trips_without_known_length(store: ObjectStore) -> None:
    size = 40 * MiB + 123  # three 16 MiB parts on S3, the last one short
    info = store.put("teams/a/datasets/big.bin", io.BufferedReader(PatternStream(size)))
    assert info.size == size
    with store.open("teams/a/datasets/big.bin") as f:
        assert stream_sha256(f) == (size, pattern_sha256(size))
    assert store.stat("teams/a/datasets/big.bin").size == size


def test_put_with_known_length_and_put_file(store: ObjectStore, tmp_path: Path) -> None:
    store.put("k/bytes", io.BytesIO(b"hello"), 5)
    source = tmp_path / "src.txt"
    source.write_bytes(b"from a file")
    assert store.put_file("k/file", source).size == len(b"from a file")
    with store.open("k/bytes") as f:
        assert f.read() == b"hello"
    store.get_file("k/file", tmp_path / "out" / "copy.txt")
    assert (tmp_path / "out" / "copy.txt").read_bytes() == b"from a file"


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("k", io.BytesIO(b"old version"))
    store.put("k", io.BytesIO(b"new"))
    with store.open("k") as f:
        assert f.read() == b"new"
    assert store.stat("k").size == 3


def test_list_is_a_key_prefix_match_sorted_by_key(store: ObjectStore) -> None:
    for key in ["a/b/2", "a/b/1", "a/bc", "a/c/3", "z", "a/b/sub/4"]:
        store.put(key, io.BytesIO(key.encode()))
    assert [i.key for i in store.list("a/b/")] == ["a/b/1", "a/b/2", "a/b/sub/4"]
    assert [i.key for i in store.list("a/b")] == ["a/b/1", "a/b/2", "a/b/sub/4", "a/bc"]
    assert [i.key for i in store.list("")] == ["a/b/1", "a/b/2", "a/b/sub/4", "a/bc", "a/c/3", "z"]
    assert list(store.list("nothing/")) == []
    sizes = {i.key: i.size for i in store.list("a/")}
    assert sizes["a/bc"] == len(b"a/bc")


def test_stat_exists_and_delete(store: ObjectStore) -> None:
    store.put("x/y", io.BytesIO(b"12345"))
    assert store.exists("x/y")
    assert store.stat("x/y").size == 5
    assert store.stat("x/y").modified_at > 0
    store.delete("x/y")
    assert not store.exists("x/y")
    assert list(store.list("x/")) == []
    store.delete("x/y")  # deleting what is not there is not an error


def test_missing_objects_raise_object_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound) as err:
        store.open("no/such/key")
    assert err.value.key == "no/such/key"
    with pytest.raises(ObjectNotFound):
        store.stat("no/such/key")
    with pytest.raises(ObjectNotFound):
        store.get_file("no/such/key", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert not store.exists("no/such/key")


@pytest.mark.parametrize(
    "key", ["", "../x", "a/../../x", "/etc/passwd", "a//b", "a\\b", "a/./b", "a/"]
)
def test_keys_that_could_escape_or_mean_two_things_are_refused(
    store: ObjectStore, key: str
) -> None:
    with pytest.raises(ObjectStoreError):
        store.put(key, io.BytesIO(b"x"))
    with pytest.raises(ObjectStoreError):
        store.open(key)


class _FailingStream(io.RawIOBase):
    """Gives ``good`` bytes, then fails like a dropped client upload."""

    def __init__(self, good: int) -> None:
        self._inner = PatternStream(good)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._inner.readinto(buffer)
        if n == 0:
            raise OSError("client went away")
        return n


def test_a_failed_upload_leaves_no_partial_object(store: ObjectStore) -> None:
    store.put("ckpt/model.bin", io.BytesIO(b"previous"))
    # Fails after the first 16 MiB part has already reached S3.
    with pytest.raises(ObjectStoreError):
        store.put("ckpt/model.bin", io.BufferedReader(_FailingStream(20 * MiB)))
    with pytest.raises(ObjectStoreError):
        store.put("ckpt/new.bin", io.BufferedReader(_FailingStream(20 * MiB)))
    assert [i.key for i in store.list("ckpt/")] == ["ckpt/model.bin"]
    with store.open("ckpt/model.bin") as f:
        assert f.read() == b"previous"


def test_a_stream_shorter_than_its_declared_length_is_refused(store: ObjectStore) -> None:
    with pytest.raises(ObjectStoreError):
        store.put("short", io.BytesIO(b"abc"), 10)
    assert not store.exists("short")


def test_presign_gives_a_download_url_where_the_backend_has_one(store: ObjectStore) -> None:
    import urllib.request

    store.put("models/m/1/weights", io.BytesIO(b"weights!"))
    url = store.presign("models/m/1/weights", expires_s=60)
    if store.url.startswith("file:"):
        assert url is None
        return
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"weights!"
