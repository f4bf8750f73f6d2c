"""Who this worker is and what it offers (GPUs, or CPU slots standing in)."""

from __future__ import annotations

import os
import socket
from typing import Any

from storage.workers import WorkerInfo
from tunepool.gpu_stats import sample_gpus
from tunepool.messages import worker_queue
from tunepool.settings import Settings


def worker_name(settings: Settings) -> str:
    return settings.worker_name or f"{socket.gethostname()}-{os.getpid()}"


def detect_gpus() -> list[dict[str, Any]]:
    """GPUs as NVML sees them, without touching CUDA in this (parent) process."""
    return [
        {"index": g["index"], "name": g["name"], "memory_mib": g["memory_total_bytes"] // 2**20}
        for g in sample_gpus()
    ]


def describe(settings: Settings) -> WorkerInfo:
    name = worker_name(settings)
    gpus = detect_gpus()
    slots = settings.worker_slots or len(gpus) or 1
    return WorkerInfo(
        name=name, hostname=socket.gethostname(), queue=worker_queue(name), slots=slots, gpus=gpus
    )
