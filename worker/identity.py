"""Who this worker is and what it offers (GPUs, or CPU slots standing in)."""

from __future__ import annotations

import os
import socket
import subprocess
from typing import Any

from scheduler.pool import WorkerInfo
from tunepool.settings import Settings
from worker.celery_app import worker_queue


def worker_name(settings: Settings) -> str:
    return settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"


def detect_gpus() -> list[dict[str, Any]]:
    """GPUs as nvidia-smi sees them, without touching CUDA in this (parent) process."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        index, name, memory = (part.strip() for part in line.split(","))
        gpus.append({"index": int(index), "name": name, "memory_mib": int(float(memory))})
    return gpus


def describe(settings: Settings) -> WorkerInfo:
    name = worker_name(settings)
    gpus = detect_gpus()
    slots = settings.worker_slots or len(gpus) or 1
    return WorkerInfo(
        name=name, hostname=socket.gethostname(), queue=worker_queue(name), slots=slots, gpus=gpus
    )
