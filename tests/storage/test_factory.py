from __future__ import annotations

from pathlib import Path

import pytest

from storage.objects.factory import open_store
from storage.objects.filesystem import FilesystemStore
from storage.objects.s3 import S3Store


def test_file_url_opens_a_folder_store(tmp_path: Path) -> None:
    store = open_store((tmp_path / "objects").as_uri())
    assert isinstance(store, FilesystemStore)
    assert store.root == tmp_path / "objects"


def test_s3_url_opens_an_s3_store_without_connecting() -> None:
    # Port 9 (discard) has nothing listening: constructing must not connect.
    store = open_store("s3://models?endpoint=127.0.0.1:9&secure=false&region=eu-west-1", "ak", "sk")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.endpoint) == ("models", "127.0.0.1:9")
    assert "ak" not in store.url and "sk" not in store.url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket", "'gs'"),
        ("file://relative/path", "file:///absolute"),
        ("s3://ak:sk@bucket?endpoint=h:9000", "credentials"),
        ("s3://?endpoint=h:9000", "s3://bucket"),
        ("s3://b?endpoint=h:9000&secure=maybe", "secure"),
        ("s3://b?endpiont=h:9000", "unknown options"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)
