"""Uploads are checked in bounded memory: a real API process (werkzeug serving the app) takes
a ~50 MB CoNLL upload, and its peak RSS grows by no more than a small constant (issue 20,
item 20: a 50 MB upload grew an API process from 133 MB to 960 MB)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from commands.netutil import answers
from commands.redis_server import RedisServer
from storage.db import transaction
from storage.platform import Platform
from storage.schema import upgrade
from storage.teams import create_team
from tunepool.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVE = (
    "import os, sys; from werkzeug.serving import run_simple; from api.app import create_app;"
    "run_simple('127.0.0.1', int(sys.argv[1]), create_app(), threaded=False)"
)
# The old reader kept the bytes, the text, its lines and every sentence at once (and the
# findings read the file whole again): hundreds of MB for 50 MB. Now a sentence at a time.
MAX_GROWTH_MB = 20


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def api_process(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[int, int, str]]:
    """(pid, port, key) of an API process of its own, on SQLite and a file store."""
    env = {
        **os.environ,
        "TUNEPOOL_HOME": str(tmp_path / "home"),
        "TUNEPOOL_DATABASE_URL": f"sqlite:///{tmp_path / 'api.sqlite3'}",
        "TUNEPOOL_OBJECT_STORE_URL": (tmp_path / "objects").as_uri(),
        "TUNEPOOL_REDIS_URL": redis_server.url,
        "PYTHONPATH": str(ROOT),
    }
    settings = Settings(
        home=tmp_path / "home",
        database_url=env["TUNEPOOL_DATABASE_URL"],
        object_store_url=env["TUNEPOOL_OBJECT_STORE_URL"],
        redis_url=redis_server.url,
    )
    platform = Platform(settings)
    upgrade(platform.engine)
    with transaction(platform.sessions) as session:
        _, key = create_team(session, "big")
    platform.close()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            assert proc.poll() is None, "the API process exited"
            assert time.monotonic() < deadline, "the API process did not start"
            time.sleep(0.1)
        yield proc.pid, port, key
    finally:
        proc.terminate()
        proc.wait(10)


def _upload(
    port: int, key: str, data_file: Path, name: str, task: str = "token-classification"
) -> tuple[int, dict]:
    """POST /v1/datasets as multipart, the body streamed from disk."""
    boundary = uuid.uuid4().hex
    fmt = data_file.suffix.lstrip(".")
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'
        for field, value in (("task", task), ("format", fmt), ("name", name))
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}.{fmt}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = tmp = data_file.with_suffix(".multipart")
    with tmp.open("wb") as out, data_file.open("rb") as src:
        out.write(head.encode())
        while chunk := src.read(1 << 20):
            out.write(chunk)
        out.write(tail)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    with body.open("rb") as f:
        conn.request(
            "POST",
            "/v1/datasets",
            body=f,
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(body.stat().st_size),
            },
        )
        resp = conn.getresponse()
        answer = json.loads(resp.read())
    conn.close()
    return resp.status, answer


def _write_conll(path: Path, size: int, token_chars: int) -> int:
    """A valid CoNLL file of about ``size`` bytes; its number of sentences."""
    sentences = 0
    with path.open("w") as f:
        written = 0
        while written < size:
            lines = [f"{chr(97 + (sentences + i) % 26) * token_chars}{i} O\n" for i in range(19)]
            block = f"{'W' * token_chars}{sentences} B-PER\n" + "".join(lines) + "\n"
            f.write(block)
            written += len(block)
            sentences += 1
    return sentences


def _write_csv(path: Path, size: int, text_chars: int) -> int:
    """A valid text-classification CSV of about ``size`` bytes; its number of examples."""
    examples = 0
    with path.open("w") as f:
        f.write("text,label\n")
        written = 0
        while written < size:
            label = "ham" if examples % 3 else "spam"
            row = f"{chr(97 + examples % 26) * text_chars} {examples},{label}\n"
            f.write(row)
            written += len(row)
            examples += 1
    return examples


def test_a_50_mb_upload_grows_the_api_process_by_a_small_constant(
    api_process: tuple[int, int, str], tmp_path: Path
) -> None:
    pid, port, key = api_process
    small, big = tmp_path / "small.conll", tmp_path / "big.conll"
    _write_conll(small, 50_000, 40)
    # Long tokens keep the test quick (fewer lines to parse); the bytes are what counted.
    sentences = _write_conll(big, 50 * 1024 * 1024, 400)
    # Warm: imports, the tokenizer, the first request's allocations.
    status, answer = _upload(port, key, small, "small")
    assert status == 201, answer
    before = psutil.Process(pid).memory_full_info()
    peak_before = _peak_rss_mb(pid)
    status, answer = _upload(port, key, big, "big")
    assert status == 201, answer
    assert answer["stats"]["sentences"] == sentences
    assert answer["size"] == big.stat().st_size
    growth = _peak_rss_mb(pid) - peak_before
    assert growth < MAX_GROWTH_MB, (growth, before.rss / 2**20)
    # Text classification is read the same way (a smaller file: the time is the parse's).
    table = tmp_path / "big.csv"
    examples = _write_csv(table, 12 * 1024 * 1024, 400)
    status, answer = _upload(port, key, table, "table", task="sequence-classification")
    assert status == 201, answer
    assert answer["stats"]["examples"] == examples
    growth = _peak_rss_mb(pid) - peak_before
    assert growth < MAX_GROWTH_MB, (growth, before.rss / 2**20)


def _peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")
