"""What `tunepool up` starts writes its logs under TUNEPOOL_HOME, rotated by size, and
gunicorn's control socket lives there too, not in the user's home (issue 24, 14 and 17)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from commands.embedded import Embedded, api_argv, child_env
from commands.netutil import free_port, wait_for_port
from tunepool.settings import Settings

CHATTY = "import sys\nfor i in range(3000): print(f'line {i:05d} ' + 'x' * 90)\nsys.stdout.flush()"


def test_a_service_log_rotates_by_size_under_tunepool_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, log_max_bytes=50_000, log_backups=3)
    platform = Embedded(settings, dict(os.environ), "", "", redis=None)
    process = platform.start("chatty", [sys.executable, "-c", CHATTY])
    assert process.wait(30) == 0
    platform.stop()
    logs = tmp_path / "logs"
    files = sorted(p.name for p in logs.iterdir())
    assert files == ["chatty.log", "chatty.log.1", "chatty.log.2", "chatty.log.3"]
    assert all((logs / name).stat().st_size <= 50_000 for name in files)
    # The newest lines are in the live file, whole, one per line.
    last = (logs / "chatty.log").read_text().splitlines()[-1]
    assert last == "line 02999 " + "x" * 90


def test_gunicorns_control_socket_is_under_tunepool_home(tmp_path: Path) -> None:
    # A Unix socket path must stay under ~100 bytes: a short home of its own.
    home = Path(tempfile.mkdtemp(prefix="tp-", dir="/tmp"))
    user_home = tmp_path / "user"
    user_home.mkdir()
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'db.sqlite3'}")
    env = child_env(settings, HOME=str(user_home))
    env.pop("XDG_RUNTIME_DIR", None)
    port = free_port()
    api = subprocess.Popen(
        api_argv(settings, port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, 60)
        deadline = time.monotonic() + 20
        while not (home / "gunicorn.ctl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (home / "gunicorn.ctl").is_socket()
        assert not (user_home / ".gunicorn").exists()
    finally:
        api.terminate()
        api.wait(30)
        shutil.rmtree(home, ignore_errors=True)
