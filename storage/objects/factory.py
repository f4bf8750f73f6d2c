"""Choose the object store from a URL (DESIGN §6): ``file:///abs/path`` or ``s3://bucket?endpoint=…``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from storage.objects.base import ObjectStore
from storage.objects.filesystem import FilesystemStore
from storage.objects.s3 import RetryPolicy, S3Store

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(value: str, name: str, url: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"object store URL {url!r}: {name}={value!r} is not true/false")


def open_store(url: str, access_key: str = "", secret_key: str = "") -> ObjectStore:
    """Build (without connecting) the store a URL names.

    S3 credentials are arguments, never part of the URL, because URLs end up in logs
    and job records; a URL that carries them is refused rather than silently used.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"object store URL {url!r}: file URLs must be file:///absolute/path")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            raise ValueError(f"object store URL {url!r}: path must be absolute")
        return FilesystemStore(path)
    if parts.scheme == "s3":
        if "@" in parts.netloc:
            raise ValueError("object store URL: pass S3 credentials as arguments, not in the URL")
        bucket = parts.netloc
        if not bucket or parts.path not in ("", "/"):
            raise ValueError(f"object store URL {url!r}: expected s3://bucket?endpoint=host:port")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"endpoint", "secure", "region", "retry_total_s"}
        if unknown:
            raise ValueError(f"object store URL {url!r}: unknown options {sorted(unknown)}")
        retry = None
        if "retry_total_s" in query:
            # The time is the bound (e.g. ride out a MinIO restart), not a count of tries.
            total_s = float(query["retry_total_s"])
            retry = RetryPolicy(total_s=total_s, attempts=max(5, int(total_s) + 1))
        return S3Store(
            bucket,
            query.get("endpoint", "s3.amazonaws.com"),
            access_key,
            secret_key,
            secure=_flag(query.get("secure", "true"), "secure", url),
            region=query.get("region") or None,
            retry=retry,
        )
    raise ValueError(
        f"unsupported object store URL scheme {parts.scheme!r} in {url!r} (use file:// or s3://)"
    )
