"""S3/MinIO object store through the ``minio`` SDK.

Nothing connects in the constructor; the bucket is created on first use. Transient
failures (connection refused/reset, timeouts, 5xx) are retried here, in one place, by
tenacity with exponential backoff under a total time bound; the HTTP pool's own
retries are off so the two layers do not multiply.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import SSLError

from storage.objects.base import ObjectInfo, ObjectNotFound, ObjectStoreError
from storage.objects.filesystem import validate_key, validate_prefix, write_atomically

T = TypeVar("T")
MiB = 1024 * 1024
LIST_PAGE = 1000
_TRANSIENT_S3_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"}
)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    first_delay_s: float = 0.5
    total_s: float = 30.0  # no retry starts after this long; bounds a call's wall time
    # Waits double up to this, so a long total_s keeps probing an outage instead of
    # sleeping through most of it after the endpoint came back.
    max_delay_s: float = 8.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the network or the server hiccuped, not the request being wrong."""
    if isinstance(exc, SSLError):
        return False  # a certificate problem will not fix itself
    if isinstance(exc, Urllib3Error | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code >= 500
    if isinstance(exc, InvalidResponseError):
        return int(getattr(exc, "_code", 0) or 0) >= 500  # e.g. a proxy's HTML 502
    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_S3_CODES or exc.response.status >= 500
    return False


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _CountingReader(io.RawIOBase):
    """Counts what minio reads, so a retry knows whether the stream was consumed."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


class _S3Reader(io.RawIOBase):
    """An object's body; resumes at the current offset after a dropped connection.

    The resumed request carries ``If-Match`` with the first response's ETag, so a
    resume never splices bytes of a newer version into an older one.
    """

    def __init__(self, store: S3Store, key: str, response: urllib3.BaseHTTPResponse) -> None:
        self._store = store
        self._key = key
        self._pos = 0
        self._response: urllib3.BaseHTTPResponse | None = response
        self._etag = response.headers.get("ETag")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._store._retrying("read", self._key, lambda: self._read(buffer))

    def _read(self, buffer: memoryview) -> int:
        if self._response is None:
            # The last attempt dropped its connection: ask again from where it stopped.
            self._response = self._store._get(self._key, self._pos, self._etag)
        try:
            n = self._response.readinto(buffer)
        except Exception:
            self._release()
            raise
        self._pos += n
        return n

    def _release(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response.release_conn()
            self._response = None

    def close(self) -> None:
        if not self.closed:
            self._release()
        super().close()


class S3Store:
    def __init__(
        self,
        bucket: str,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        secure: bool = True,
        region: str | None = None,
        part_size: int = 16 * MiB,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.part_size = part_size
        self.retry = retry or RetryPolicy()
        # Credentials stay out of the URL: it gets logged.
        self.url = f"s3://{bucket}?endpoint={endpoint}&secure={str(secure).lower()}"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(
                connect=self.retry.connect_timeout_s, read=self.retry.read_timeout_s
            ),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=False,
        )
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    def _error(self, what: str, key: str, exc: BaseException) -> ObjectStoreError:
        if isinstance(exc, ObjectStoreError):
            return exc
        if isinstance(exc, S3Error) and exc.code == "NoSuchKey":
            return ObjectNotFound(key)
        where = f"bucket {self.bucket} at {self.endpoint}"
        return ObjectStoreError(f"S3 {what} of {key!r} ({where}) failed: {exc}")

    def _retrying(
        self,
        what: str,
        key: str,
        attempt: Callable[[], T],
        rewind: Callable[[], bool] = lambda: True,
    ) -> T:
        """Run ``attempt``; after a transient failure, ``rewind``, back off and run it again."""
        policy = self.retry
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: is_transient(exc) and rewind()),
            stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.total_s),
            wait=wait_exponential(multiplier=policy.first_delay_s, max=policy.max_delay_s),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Exception as exc:
            raise self._error(what, key, exc) from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if not self._bucket_ready:
                self._retrying("create bucket", self.bucket, self._create_bucket)
                self._bucket_ready = True

    def _create_bucket(self) -> None:
        if self.client.bucket_exists(self.bucket):
            return
        try:
            self.client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise  # another process creating it at the same moment is fine

    def _get(self, key: str, offset: int, etag: str | None) -> urllib3.BaseHTTPResponse:
        headers: dict[str, str | list[str] | tuple[str]] | None = (
            {"If-Match": etag} if etag else None
        )
        return self.client.get_object(self.bucket, key, offset=offset, request_headers=headers)

    # -- the ObjectStore interface ----------------------------------------------

    def put(self, key: str, stream: BinaryIO, length: int = -1) -> ObjectInfo:
        """Upload; with unknown length, in ``part_size`` multipart parts (visible on completion).

        A retry re-sends from the start, so a stream that cannot seek back is only
        retried if minio had not yet read from it.
        """
        validate_key(key)
        self._ensure_bucket()
        counted = _CountingReader(stream)
        start = stream.tell() if _seekable(stream) else None

        def rewind() -> bool:
            if counted.count and start is None:
                return False
            if counted.count:
                stream.seek(start or 0)
                counted.count = 0
            return True

        def upload() -> object:
            # minio only calls read() on the stream, which _CountingReader provides.
            data: BinaryIO = counted  # type: ignore[assignment]
            return self.client.put_object(self.bucket, key, data, length, part_size=self.part_size)

        self._retrying("put", key, upload, rewind)
        return ObjectInfo(key=key, size=counted.count, modified_at=time.time())

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket()
        size = Path(path).stat().st_size
        self._retrying(
            "put",
            key,
            lambda: self.client.fput_object(self.bucket, key, str(path), part_size=self.part_size),
        )
        return ObjectInfo(key=key, size=size, modified_at=time.time())

    def open(self, key: str) -> BinaryIO:
        validate_key(key)
        self._ensure_bucket()
        # Request before building the reader, so a missing key leaves nothing to close.
        response = self._retrying("get", key, lambda: self._get(key, 0, None))
        return io.BufferedReader(_S3Reader(self, key, response), buffer_size=MiB)

    def get_file(self, key: str, path: Path) -> None:
        with self.open(key) as src:
            write_atomically(src, Path(path))

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        self._ensure_bucket()
        obj = self._retrying("stat", key, lambda: self.client.stat_object(self.bucket, key))
        modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
        return ObjectInfo(key=key, size=obj.size or 0, modified_at=modified)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "", recursive: bool = True) -> Iterator[ObjectInfo]:
        """Objects under ``prefix`` by key; non-recursive lists only the first level.

        Listing is paged; after a transient failure it resumes after the last key seen.
        """
        # Validate and create the bucket now, not at the first next(), like the filesystem store.
        validate_prefix(prefix)
        self._ensure_bucket()
        return self._list_pages(prefix, recursive)

    def _list_pages(self, prefix: str, recursive: bool) -> Iterator[ObjectInfo]:
        last: str | None = None
        while True:
            page = self._retrying("list", prefix, partial(self._list_page, prefix, recursive, last))
            yield from page
            if len(page) < LIST_PAGE:
                return
            last = page[-1].key

    def _list_page(self, prefix: str, recursive: bool, after: str | None) -> tuple[ObjectInfo, ...]:
        """Up to LIST_PAGE objects after ``after``: one retryable unit of a listing."""
        objects = self.client.list_objects(
            self.bucket, prefix=prefix or None, recursive=recursive, start_after=after
        )
        return tuple(
            islice(
                (
                    ObjectInfo(
                        key=obj.object_name,
                        size=obj.size or 0,
                        modified_at=obj.last_modified.timestamp() if obj.last_modified else 0.0,
                    )
                    for obj in objects
                    if not obj.is_dir and obj.object_name is not None
                ),
                LIST_PAGE,
            )
        )

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        self._retrying("delete", key, lambda: self.client.remove_object(self.bucket, key))

    def presign(self, key: str, expires_s: int = 3600) -> str | None:
        validate_key(key)
        self._ensure_bucket()
        expires = timedelta(seconds=expires_s)
        return self._retrying(
            "presign", key, lambda: self.client.presigned_get_object(self.bucket, key, expires)
        )
