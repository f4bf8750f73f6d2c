"""A worker that sees NVIDIA GPUs but has a CPU build of torch refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from commands.redis_server import RedisServer
from worker.cuda_check import gpu_torch_mismatch, torch_cuda_build

H100 = [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559}]


def test_gpus_with_a_cpu_torch_are_refused_with_the_reason() -> None:
    message = gpu_torch_mismatch(H100, None)
    assert message is not None
    assert "CPU build" in message and "NVIDIA H100" in message and "TORCH_FLAVOR" in message


def test_gpus_with_a_cuda_torch_or_no_gpus_start() -> None:
    assert gpu_torch_mismatch(H100, "12.8") is None
    assert gpu_torch_mismatch([], None) is None


def test_this_machines_torch_is_the_cpu_build() -> None:
    # The project pins the CPU wheel for development and CI.
    assert torch_cuda_build() is None


def test_the_worker_command_refuses_on_a_gpu_host_with_cpu_torch(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # A stand-in nvidia-smi that reports one H100, first on PATH: the worker counts GPUs
    # through it exactly as on a real host.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 0, 10, 81559'\n")
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "TUNEPOOL_HOME": str(tmp_path / "home"),
        "TUNEPOOL_REDIS_URL": redis_server.url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "commands", "worker", "--name", "gpu-test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "CPU build" in done.stderr and "NVIDIA H100" in done.stderr, done.stderr[-2000:]
