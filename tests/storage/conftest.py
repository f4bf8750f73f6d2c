"""Fixtures: the same behaviour tests run against a folder and against S3 (moto on loopback)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from moto.server import ThreadedMotoServer
from sqlalchemy.orm import Session

from storage.db import make_engine, make_session_factory
from storage.models import Base
from storage.objects.base import ObjectStore
from storage.objects.filesystem import FilesystemStore
from storage.objects.s3 import RetryPolicy, S3Store

MiB = 1024 * 1024


class PatternStream(io.RawIOBase):
    """``size`` deterministic bytes made on demand, so a 40 MB upload never sits in memory.

    Non-seekable on purpose: it is what an HTTP upload body looks like to a store.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self._left = size
        self._offset = 0
        # Byte i is block[i % len(block)]; the odd period means no two 16 MiB parts are
        # equal, so a swapped or repeated part changes the digest.
        block = hashlib.sha256(str(seed).encode()).digest() * (MiB // 32) + b"tunepool"
        self._period = len(block)
        self._twice = block + block

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, self._period)
        start = self._offset % self._period
        buffer[:n] = self._twice[start : start + n]
        self._left -= n
        self._offset += n
        return n


def pattern_sha256(size: int, seed: int = 0) -> str:
    digest, stream = hashlib.sha256(), io.BufferedReader(PatternStream(size, seed))
    while chunk := stream.read(MiB):
        digest.update(chunk)
    return digest.hexdigest()


def stream_sha256(stream: IO[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(MiB):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    # moto checks for credentials; fake ones keep any real ones from being used.
    fake = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {name: os.environ.get(name) for name in fake}
    os.environ.update(fake)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def make_s3_store(endpoint: str, bucket: str | None = None, **retry: float) -> S3Store:
    policy = RetryPolicy(**{"first_delay_s": 0.05, "total_s": 5.0, **retry})  # type: ignore[arg-type]
    return S3Store(
        bucket or f"test-{uuid.uuid4().hex[:12]}",
        endpoint,
        "testing",
        "testing",
        secure=False,
        region="us-east-1",
        retry=policy,
    )


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "filesystem":
        return FilesystemStore(tmp_path / "objects")
    # A fresh bucket per test isolates tests sharing the one moto server.
    return make_s3_store(request.getfixturevalue("s3_endpoint"))


def overwrite_behind_store(store: ObjectStore, key: str, data: bytes) -> None:
    """Replace an object's bytes without going through ``store`` (simulated corruption)."""
    if isinstance(store, FilesystemStore):
        store.root.joinpath(*key.split("/")).write_bytes(data)
    elif isinstance(store, S3Store):
        store.client.put_object(store.bucket, key, io.BytesIO(data), len(data))
    else:
        raise TypeError(type(store))


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine("sqlite:///" + str(tmp_path / "t.db"))
    Base.metadata.create_all(engine)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()
