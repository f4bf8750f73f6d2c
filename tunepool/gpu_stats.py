"""Utilisation and memory of this host's GPUs, read through NVML.

pynvml (``nvidia-ml-py``) is optional: without it ``nvidia-smi`` (itself an NVML
client) is asked; without either, or without a GPU, the answer is an empty list.
Neither path initialises CUDA, so a worker's parent process may call this (DESIGN §10).
"""

from __future__ import annotations

import subprocess
from typing import Any


def sample_gpus() -> list[dict[str, Any]]:
    """One reading per GPU: index, name, utilization (0..1), memory used/total in bytes."""
    try:
        return _via_pynvml()
    except Exception:
        return _via_nvidia_smi()


def _via_pynvml() -> list[dict[str, Any]]:
    import pynvml

    pynvml.nvmlInit()
    try:
        samples = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            util = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            samples.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else str(name),
                    "utilization": util.gpu / 100.0,
                    "memory_used_bytes": int(memory.used),
                    "memory_total_bytes": int(memory.total),
                }
            )
        return samples
    finally:
        pynvml.nvmlShutdown()


def nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's output, or None where there is no driver (CPU-only hosts)."""
    try:
        return subprocess.run(
            ["nvidia-smi", *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def compute_pids() -> set[int]:
    """Processes the driver lists as holding GPU memory (empty without GPUs)."""
    out = nvidia_smi("--query-compute-apps=pid", "--format=csv,noheader") or ""
    return {int(line) for line in (raw.strip() for raw in out.splitlines()) if line.isdigit()}


def _via_nvidia_smi() -> list[dict[str, Any]]:
    query = "index,name,utilization.gpu,memory.used,memory.total"
    out = nvidia_smi(f"--query-gpu={query}", "--format=csv,noheader,nounits")
    if out is None:
        return []
    samples = []
    mib = 1024 * 1024
    for line in out.strip().splitlines():
        index, name, util, used, total = (part.strip() for part in line.split(","))
        samples.append(
            {
                "index": int(index),
                "name": name,
                "utilization": _number(util) / 100.0,
                "memory_used_bytes": int(_number(used) * mib),
                "memory_total_bytes": int(_number(total) * mib),
            }
        )
    return samples


def _number(text: str) -> float:
    # nvidia-smi prints "[N/A]" for readings a GPU (or a MIG slice) does not offer.
    try:
        return float(text)
    except ValueError:
        return 0.0
