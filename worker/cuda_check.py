"""Refuse to run a worker that would train on the CPU beside idle NVIDIA GPUs.

An image built with the CPU wheel of torch runs on a GPU host without complaint and
trains on the CPU, a hundred times slower, while the GPUs it reported to admission sit
idle. The worker's parent process must not initialise CUDA (it forks a process per
job, DESIGN §10), so torch is asked in a child process which CUDA it was built with.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

_ASK_TORCH = "import torch; print(torch.version.cuda or '')"


def torch_cuda_build() -> str | None:
    """The CUDA version this environment's torch was built with; None for a CPU build."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _ASK_TORCH],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def gpu_torch_mismatch(gpus: list[dict[str, Any]], cuda_build: str | None) -> str | None:
    """Why a worker that sees ``gpus`` may not start with this torch, or None if it may."""
    if not gpus or cuda_build:
        return None
    names = ", ".join(sorted({str(g.get("name", "GPU")) for g in gpus}))
    return (
        f"this host has {len(gpus)} NVIDIA GPU(s) ({names}) but the installed torch is a "
        "CPU build, so jobs would train on the CPU. Install a CUDA build of torch (the "
        "image: docker compose build gpu-worker, which passes TORCH_FLAVOR=cu128), or "
        "hide the GPUs from this worker."
    )
