"""A serving worker's adapter files: fetched verified once, bounded in bytes on disk, least
recently used out first, never while a request uses them (worker.serving.adapter_files)."""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest

from storage.blobs import Recorded
from storage.objects.filesystem import FilesystemStore
from tunepool.serving_protocol import Refused
from worker.serving.adapter_files import AdapterFiles

KB = 1024


def adapter(store: FilesystemStore, name: str, nbytes: int) -> tuple[str, list[Recorded]]:
    """An adapter's two files in the store, as the API hands them over: (prefix, objects)."""
    prefix = f"teams/t1/models/{name}/1"
    objects = []
    for filename, data in (
        ("adapter_config.json", b'{"r": 8}'),
        ("adapter_model.safetensors", bytes([len(name)]) * (nbytes - 8)),
    ):
        key = f"{prefix}/{filename}"
        store.put(key, io.BytesIO(data), len(data))
        objects.append(Recorded(key, len(data), hashlib.sha256(data).hexdigest()))
    return prefix, objects


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "objects")


def on_disk(files: AdapterFiles) -> set[str]:
    return {p.name.split(".")[0] for p in files.directory.iterdir()}


def test_files_are_fetched_once_and_the_least_recently_used_go_past_the_budget(
    store: FilesystemStore, tmp_path: Path
) -> None:
    files = AdapterFiles(store, tmp_path / "adapters", max_bytes=100 * KB)
    made = {name: adapter(store, name, 40 * KB) for name in ("ft1", "ft2", "ft3")}

    for name in ("ft1", "ft2", "ft1"):  # ft1 used last: ft2 is the oldest
        with files.using(name, *made[name]) as path:
            assert (path / "adapter_model.safetensors").stat().st_size == 40 * KB - 8
    assert files.fetches == 2 and on_disk(files) == {"ft1", "ft2"}

    with files.using("ft3", *made["ft3"]):
        pass
    # 120 KB past a 100 KB budget: the least recently used went, its directory too.
    assert on_disk(files) == {"ft1", "ft3"}
    assert files.locate("ft2") is None and files.locate("ft1") is not None
    assert files.nbytes == 80 * KB and files.removals == 1

    with files.using("ft2", *made["ft2"]):  # fetched again by its next request
        pass
    assert files.fetches == 4 and on_disk(files) == {"ft3", "ft2"}


def test_files_in_use_stay_even_past_the_budget(store: FilesystemStore, tmp_path: Path) -> None:
    files = AdapterFiles(store, tmp_path / "adapters", max_bytes=50 * KB)
    ft1, ft2 = adapter(store, "ft1", 40 * KB), adapter(store, "ft2", 40 * KB)

    with files.using("ft1", *ft1) as first:
        with files.using("ft2", *ft2):
            pass
        # ft2's request ended and the two are over budget, but ft1's request still runs:
        # the keeper may not have read its files yet.
        assert first.exists() and files.locate("ft1") == first
        assert files.locate("ft2") is None
    with files.using("ft2", *ft2):
        pass
    assert on_disk(files) == {"ft2"} and not first.exists()


def test_concurrent_first_requests_share_one_download(
    store: FilesystemStore, tmp_path: Path
) -> None:
    files = AdapterFiles(store, tmp_path / "adapters", max_bytes=10 * 1024 * KB)
    made = adapter(store, "ft1", 512 * KB)
    paths: list[Path] = []
    start = threading.Barrier(8)

    def request() -> None:
        start.wait()
        with files.using("ft1", *made) as path:
            paths.append(path)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert files.fetches == 1 and len(set(paths)) == 1 and len(paths) == 8


def test_a_bad_download_is_a_503_and_leaves_nothing(store: FilesystemStore, tmp_path: Path) -> None:
    files = AdapterFiles(store, tmp_path / "adapters", max_bytes=100 * KB)
    prefix, objects = adapter(store, "ft1", 10 * KB)
    tampered = [objects[0], Recorded(objects[1].key, objects[1].size, "0" * 64)]

    with pytest.raises(Refused) as refused, files.using("ft1", prefix, tampered):
        pass
    assert refused.value.failure.status == 503
    assert files.locate("ft1") is None and files.nbytes == 0
    assert not files.directory.exists() or not any(files.directory.iterdir())
