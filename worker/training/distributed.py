"""Data-parallel training over several processes (DDP), launched torchrun-style.

`finetune` with `spec.world_size` > 1 calls `run_data_parallel`: the calling
process becomes rank 0 (it keeps the caller's callbacks: progress, lease, cancel)
and `world_size - 1` subprocesses join as the other ranks (as torchrun would start
them; `python -m worker.training.distributed SPEC RANK WORLD PORT`). NCCL on CUDA
(rank r uses cuda:r of the GPUs the job was given), gloo on CPU.

How the work is split: `batch_size` stays the global batch. Every rank builds the
same length-grouped batch order from the seed and trains on its slice of each
batch (`batch[rank::world]`); DDP averages the gradients. The step count, the
schedule and the meaning of every hyperparameter are therefore those of a
single-process run. All ranks evaluate (so early stopping and the best epoch are
decided identically without extra messages); only rank 0 writes checkpoints and
the final model. Stop requests are polled on rank 0 and broadcast every
`log_every_steps` steps, the only host sync besides logging.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from storage.attempts import StopReason
from worker.training.callbacks import NullCallbacks, TrainCallbacks

# The order is the wire code (index + 1) every rank agrees on.
STOP_REASONS = (StopReason.CANCEL, StopReason.PREEMPT, StopReason.LEASE_LOST)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: Sequence[int]) -> list[int]:
        return list(indices[self.rank :: self.world])

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        reduced = tensor.detach().clone()
        dist.all_reduce(reduced)
        return reduced / self.world

    def total(self, tensor: torch.Tensor) -> torch.Tensor:
        reduced = tensor.detach().clone()
        dist.all_reduce(reduced)
        return reduced


class DistributedCallbacks:
    """Rank 0's callbacks for every rank: only rank 0 reports; its stop decision is
    broadcast every `every` steps so all ranks stop after the same step."""

    def __init__(
        self, inner: TrainCallbacks, context: DistContext, every: int, device: torch.device
    ) -> None:
        self.inner, self.context, self.every, self.device = inner, context, every, device
        self._calls = 0

    def on_progress(self, event: dict[str, Any]) -> None:
        if self.context.is_main:
            self.inner.on_progress(event)

    def on_evaluate(self, epoch: int, metrics: dict[str, Any]) -> None:
        if self.context.is_main:
            self.inner.on_evaluate(epoch, metrics)

    def on_checkpoint(self, step: int, epoch: float, path: Path, metrics: dict[str, Any]) -> None:
        if self.context.is_main:
            self.inner.on_checkpoint(step, epoch, path, metrics)

    def should_stop(self) -> str | None:
        self._calls += 1
        if self._calls % self.every:
            return None
        code = 0
        if self.context.is_main:
            reason = self.inner.should_stop()
            code = STOP_REASONS.index(reason) + 1 if reason in STOP_REASONS else 0
        flag = torch.tensor([code], device=self.device)
        dist.broadcast(flag, src=0)
        value = int(flag.item())
        return STOP_REASONS[value - 1] if value else None


def run_data_parallel(spec: Any, callbacks: TrainCallbacks) -> Any:
    """Run `spec` on `spec.world_size` processes; returns rank 0's TrainResult.

    The other ranks are plain subprocesses (`python -m worker.training.distributed`),
    not multiprocessing children: a Celery prefork worker is a daemonic process,
    which multiprocessing forbids to have children.
    """
    world = spec.world_size
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tunepool-ddp-") as tmp:
        spec_path = Path(tmp) / "spec.pickle"
        spec_path.write_bytes(pickle.dumps(spec))
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        children = []
        for rank in range(1, world):
            command = [sys.executable, "-m", "worker.training.distributed", str(spec_path)]
            command += [str(rank), str(world), str(port)]
            with (Path(tmp) / f"rank{rank}.log").open("wb") as log_file:
                children.append(
                    subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
                )
        try:
            result = _run_rank(0, spec, world, port, callbacks)
        except BaseException:
            # The other ranks would wait in a collective until the timeout: end them now.
            for child in children:
                child.kill()
                child.wait()
            raise
        for rank, child in enumerate(children, start=1):
            if child.wait() != 0:
                log = (Path(tmp) / f"rank{rank}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"data-parallel rank {rank} failed: {log}")
    return result


def _child_main(argv: list[str]) -> None:
    spec_path, rank, world, port = argv
    spec = pickle.loads(Path(spec_path).read_bytes())
    _run_rank(int(rank), spec, int(world), int(port), NullCallbacks())


def _run_rank(rank: int, spec: Any, world: int, port: int, callbacks: TrainCallbacks) -> Any:
    from worker.training.engine import finetune_rank

    cuda = torch.cuda.is_available() and spec.device in ("auto", "cuda")
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(
        "nccl" if cuda else "gloo", rank=rank, world_size=world, timeout=timedelta(minutes=30)
    )
    if cuda:
        torch.cuda.set_device(rank)
    else:
        # Ranks share the host's cores; more threads than cores each only contend.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    scratch = None if rank == 0 else Path(tempfile.mkdtemp(prefix=f"tunepool-rank{rank}-"))
    try:
        local = spec if scratch is None else dataclasses.replace(spec, output_dir=scratch)
        device = f"cuda:{rank}" if cuda else "cpu"
        return finetune_rank(
            dataclasses.replace(local, device=device), callbacks, DistContext(rank, world)
        )
    finally:
        dist.destroy_process_group()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    _child_main(sys.argv[1:])
