"""What only the S3 backend has: lazy bucket creation, retries, resumed reads."""

from __future__ import annotations

import io
import socket
import time
from typing import Any

import pytest
from urllib3.exceptions import ProtocolError

from storage.objects.base import ObjectStoreError
from storage.objects.s3 import S3Store, is_transient
from tests.storage.conftest import MiB, PatternStream, make_s3_store, pattern_sha256, stream_sha256


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_bucket_is_created_on_first_use_not_at_construction(s3_endpoint: str) -> None:
    store = make_s3_store(s3_endpoint)
    assert not store.client.bucket_exists(store.bucket)
    store.put("k", io.BytesIO(b"x"))
    assert store.client.bucket_exists(store.bucket)
    # A second store on the same bucket finds it and does not fail creating it.
    assert make_s3_store(s3_endpoint, bucket=store.bucket).exists("k")


def test_an_unreachable_endpoint_fails_within_the_retry_budget() -> None:
    store = make_s3_store(f"127.0.0.1:{_closed_port()}", attempts=10, total_s=1.0)
    started = time.monotonic()
    with pytest.raises(ObjectStoreError) as err:
        store.put("k", io.BytesIO(b"x"))
    elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 3.0  # it did back off, and stopped at the bound
    assert "127.0.0.1" in str(err.value)


def test_transient_failures_are_retried_then_succeed(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_s3_store(s3_endpoint)
    store.put("k", io.BytesIO(b"payload"))
    real_stat, calls = store.client.stat_object, []

    def flaky_stat(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
        return real_stat(*args, **kwargs)

    monkeypatch.setattr(store.client, "stat_object", flaky_stat)
    assert store.stat("k").size == len(b"payload")
    assert len(calls) == 3


def test_a_retried_upload_rewinds_a_seekable_stream(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_s3_store(s3_endpoint)
    store.put("warmup", io.BytesIO(b""))  # create the bucket before counting uploads
    real_upload, calls = store.client._upload_part, []

    def drop_first_part(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
        return real_upload(*args, **kwargs)

    monkeypatch.setattr(store.client, "_upload_part", drop_first_part)
    monkeypatch.setattr(
        store.client, "_upload_part_task", lambda args: (args[5], drop_first_part(*args))
    )
    data = io.BytesIO(b"".join(bytes([i]) * MiB for i in range(33)))  # 3 parts
    store.put("big", data)
    assert len(calls) > 3  # the first attempt failed and the whole upload ran again
    with store.open("big") as f:
        assert f.read() == data.getvalue()  # from the start: the stream was rewound


def test_a_read_resumes_where_a_dropped_connection_left_off(s3_endpoint: str) -> None:
    size = 3 * MiB
    store = make_s3_store(s3_endpoint)
    store.put("obj", io.BufferedReader(PatternStream(size)))
    stream = store.open("obj")
    first = stream.read(MiB)
    reader = stream.raw  # type: ignore[attr-defined]
    response = reader._response
    real_readinto, dropped = response.readinto, list[int]()

    def drop_once(buffer: Any) -> int:
        if not dropped:
            dropped.append(1)
            raise ProtocolError("Connection broken", ConnectionResetError(104, "reset"))
        return int(real_readinto(buffer))

    response.readinto = drop_once
    rest = stream.read()
    stream.close()
    assert dropped and reader._response is not response  # it reconnected
    assert stream_sha256(io.BytesIO(first + rest)) == (size, pattern_sha256(size))


def test_only_network_and_server_failures_count_as_transient() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(ProtocolError("reset"))
    assert not is_transient(OSError("disk read failed"))
    assert not is_transient(ValueError("bad"))


def test_s3_store_url_names_bucket_and_endpoint_but_no_secret() -> None:
    store = S3Store("b", "minio:9000", "AKIA-EXAMPLE", "s3cr3t", secure=False)
    assert store.url == "s3://b?endpoint=minio:9000&secure=false"
