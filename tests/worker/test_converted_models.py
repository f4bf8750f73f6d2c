"""A builtin base model is converted once for the whole platform, then fetched.

The real GGUF conversion (about 40 s) is tested in
tests/training/test_causal_lm_base_models.py; here a small converter stands in for it
so that what is under test, who converts, who fetches and what is published, runs in
well under a second against SQL and both object stores.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from storage.converted_models import published_build
from storage.objects.base import ObjectStore
from worker.converted_models import BuiltinSource, converted_base_dir


class CountingConverter:
    """Writes a small model directory whose every file names the conversion that wrote it."""

    def __init__(self, wait_for: threading.Barrier | None = None) -> None:
        self.calls: list[Path] = []
        self._lock = threading.Lock()
        self._wait_for = wait_for

    def __call__(self, source: Path, out: Path) -> Path:
        with self._lock:
            self.calls.append(source)
            number = len(self.calls)
        if self._wait_for is not None:
            self._wait_for.wait(timeout=10)  # both conversions run at the same time
        out.mkdir(parents=True)
        (out / "config.json").write_text(f'{{"conversion": {number}}}')
        (out / "model.safetensors").write_bytes(bytes([number]) * 4096)
        return out


def _source(tmp_path: Path) -> BuiltinSource:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    return BuiltinSource("Tiny-Chat", "tiny-chat-0.1", gguf)


def _conversion_of(model_dir: Path) -> int:
    """Which conversion wrote the model in ``model_dir``; every file must agree."""
    number = int((model_dir / "config.json").read_text().split(":")[1].strip(" }"))
    assert (model_dir / "model.safetensors").read_bytes() == bytes([number]) * 4096
    return number


def test_two_resolutions_convert_once(
    sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    source, convert = _source(tmp_path), CountingConverter()
    first = converted_base_dir(sessions, store, source, tmp_path / "host-a", convert)
    # Another worker, with an empty cache of its own: fetches the published copy.
    second = converted_base_dir(sessions, store, source, tmp_path / "host-b", convert)
    # The first host again: its local copy, without asking anyone.
    again = converted_base_dir(sessions, store, source, tmp_path / "host-a", convert)

    assert len(convert.calls) == 1
    assert first == again and first != second
    assert _conversion_of(first) == _conversion_of(second) == 1
    with sessions() as session:
        build = published_build(session, source.name, source.source_id)
    assert build is not None and build.startswith("base-models/Tiny-Chat/tiny-chat-0.1/")
    assert {info.key.removeprefix(build) for info in store.list(build)} >= {
        "config.json",
        "model.safetensors",
        "published.json",
    }


@pytest.mark.parametrize("store", ["filesystem"], indirect=True)
def test_concurrent_first_conversions_publish_whole_copies(
    sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    convert = CountingConverter(wait_for=threading.Barrier(2))
    results: dict[str, Path] = {}
    errors: list[BaseException] = []

    def resolve(host: str) -> None:
        try:
            results[host] = converted_base_dir(sessions, store, source, tmp_path / host, convert)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=resolve, args=(h,)) for h in ("host-a", "host-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert len(convert.calls) == 2  # neither saw the other's copy: both converted

    # Each host holds one whole conversion, never files of both.
    assert {_conversion_of(results["host-a"]), _conversion_of(results["host-b"])} == {1, 2}
    # Every later worker takes the same published build, whole.
    late = [
        _conversion_of(converted_base_dir(sessions, store, source, tmp_path / h, convert))
        for h in ("host-c", "host-d")
    ]
    assert len(convert.calls) == 2 and late[0] == late[1]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("store", ["filesystem"], indirect=True)
def test_a_crashed_local_copy_is_replaced(
    sessions: sessionmaker[Session], store: ObjectStore, tmp_path: Path
) -> None:
    source, convert = _source(tmp_path), CountingConverter()
    converted_base_dir(sessions, store, source, tmp_path / "host-a", convert)
    crashed = tmp_path / "host-b" / source.name / source.source_id
    crashed.mkdir(parents=True)
    (crashed / "model.safetensors").write_bytes(b"half")  # no mark: a fetch that died
    assert (
        _conversion_of(converted_base_dir(sessions, store, source, tmp_path / "host-b", convert))
        == 1
    )
    assert len(convert.calls) == 1
