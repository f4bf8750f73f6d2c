"""``tunepool up`` as a reader starts it, in a home and on a free port of its own, and the
directory a reader runs the README's snippets from."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from commands.netutil import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Up:
    home: Path
    api_url: str
    env: dict[str, str]
    log: Path


def _reader_env(home: Path) -> dict[str, str]:
    # Nothing of the test session's own TUNEPOOL_* settings (inline admission passes,
    # tiny allow-lists): the platform runs with the defaults a reader gets.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUNEPOOL_")}
    env["TUNEPOOL_HOME"] = str(home)
    # This checkout's code, also where the venv holds another checkout's editable install.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _wait_ready(process: subprocess.Popen[bytes], home: Path, log: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tunepool up exited {process.returncode}:\n{log.read_text()[-4000:]}")
        credentials = home / "credentials.json"
        if credentials.exists():
            url = str(json.loads(credentials.read_text())["api_url"])
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass
        time.sleep(0.3)
    pytest.fail(f"tunepool up was not ready within {timeout_s:.0f}s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def tunepool_up(tmp_path: Path) -> Iterator[Up]:
    # gunicorn's control socket lives in the home: a short path keeps it under the
    # ~100-byte limit of a Unix socket's name.
    home = Path(tempfile.mkdtemp(prefix="tp-readme-", dir="/tmp"))
    env = _reader_env(home)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "commands", "up", "--port", str(free_port())],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        url = _wait_ready(process, home, log, timeout_s=120)
        yield Up(home, url, env, log)
    finally:
        process.send_signal(signal.SIGTERM)  # `up` stops what it started, then itself
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def reader_dir(tmp_path: Path) -> Path:
    """Where the snippets run: like the repository's root, with its `.venv` and `demo/`."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))
    (work / "demo").symlink_to(ROOT / "demo")
    return work
