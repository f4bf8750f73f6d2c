"""The SFT training loop: token-weighted steps, progress, stop requests, checkpoints.

Each optimizer step averages the loss over the trained tokens of all its
micro-batches (counted on the host before the forward pass, so no sync), the
same normalisation as a single large batch; averaging per micro-batch instead
would overweight the micro-batches with few assistant tokens.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from tunepool.progress_rate import SmoothedRate
from worker.training.batching import epoch_seed
from worker.training.callbacks import TrainCallbacks
from worker.training.causal_lm.batches import Batch, summed_loss, target_count
from worker.training.causal_lm.checkpoint import save_sft_checkpoint
from worker.training.causal_lm.rendering import EncodedChat
from worker.training.causal_lm.spec import SFTHyperparameters
from worker.training.checkpoint import TrainerState
from worker.training.evaluation import autocast
from worker.training.progress import progress_event, report_due

# epoch seed -> the epoch's optimizer steps (lists of example indices)
EpochOrder = Callable[[int], list[list[int]]]
# one step's example indices -> its micro-batches
MicroBatches = Callable[[list[int]], list[list[int]]]
Collate = Callable[[Sequence[EncodedChat]], Batch]
# 0-based epoch -> held-out metrics
EpochEvaluation = Callable[[int], dict[str, float]]


class SFTLoop:
    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        hp: SFTHyperparameters,
        state: TrainerState,
        items: Sequence[EncodedChat],
        order: EpochOrder,
        split: MicroBatches,
        collate: Collate,
        evaluate: EpochEvaluation,
        callbacks: TrainCallbacks,
        device: torch.device,
        output_dir: Path,
        total_steps: int,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.hp, self.state, self.items, self.order = hp, state, items, order
        self.split = split
        self.collate, self.evaluate, self.callbacks = collate, evaluate, callbacks
        self.device, self.total_steps = device, total_steps
        self.checkpoint_dir = output_dir / "checkpoints"
        self.last_checkpoint: Path | None = None
        self.trained_tokens = 0  # real (non-padding) tokens this process trained on
        self.train_seconds = 0.0
        self._pending: list[torch.Tensor] = []
        self._interval: list[float] = []
        self._interval_tokens = self._interval_samples = 0
        self._steps = self._interval_steps = 0  # optimizer steps of this run; at last report
        self._rate = SmoothedRate()

    def run(self) -> str | None:
        hp, state = self.hp, self.state
        self.model.train()
        while state.epoch < hp.epochs:
            state.epoch_seed = epoch_seed(hp.seed, state.epoch)
            steps = self.order(state.epoch_seed)
            state.batches_in_epoch = len(steps)
            # A resumed run rebuilds the same order and skips the steps it trained.
            while state.batches_done < len(steps):
                self._step(self.split(steps[state.batches_done]))
                state.batches_done += 1
                if report_due(state.global_step, self._steps, self.total_steps, hp.log_every_steps):
                    self._report()
                reason = self.callbacks.should_stop()
                if reason is not None:
                    self._checkpoint()
                    return reason
                every = hp.checkpoint_every_steps
                if every and state.global_step % every == 0 and state.batches_done < len(steps):
                    self._checkpoint()
            self._flush()
            metrics = self.evaluate(state.epoch)
            number = state.epoch + 1  # what reports, events and people call this epoch
            self.callbacks.on_evaluate(number, metrics)
            state.eval_history.append({"epoch": number, "step": state.global_step, **metrics})
            state.epoch, state.batches_done = state.epoch + 1, 0
            state.epochs_completed = state.epoch
            if state.epoch < hp.epochs:
                self._checkpoint()
        self._flush()
        return None

    def _step(self, window: Sequence[Sequence[int]]) -> None:
        started = time.perf_counter()
        groups = [[self.items[i] for i in indices] for indices in window]
        targets = max(sum(target_count(group) for group in groups), 1)
        step_loss = torch.zeros((), device=self.device)
        for group in groups:
            with autocast(self.device):
                loss = summed_loss(self.model, self.collate(group), self.device) / targets
            loss.backward()
            step_loss += loss.detach()
            tokens = sum(len(item.input_ids) for item in group)
            self._interval_tokens += tokens
            self.trained_tokens += tokens
            self._interval_samples += len(group)
        if self.hp.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.hp.max_grad_norm
            )
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1
        self._steps += 1
        self._pending.append(step_loss)
        self.train_seconds += time.perf_counter() - started

    def _flush(self) -> None:
        if not self._pending:
            return
        values = torch.stack(self._pending).tolist()
        first = self.state.global_step - len(values) + 1
        self.state.loss_history.extend(
            {"step": first + offset, "loss": value} for offset, value in enumerate(values)
        )
        self._interval.extend(values)
        self._pending.clear()

    def _report(self) -> None:
        self._flush()
        self.callbacks.on_progress(
            progress_event(
                self.state,
                self.hp.epochs,
                self.total_steps,
                loss=sum(self._interval) / len(self._interval) if self._interval else None,
                learning_rate=float(self.scheduler.get_last_lr()[0]),
                rate=self._rate,
                steps=self._steps - self._interval_steps,
                samples=self._interval_samples,
                tokens=self._interval_tokens,
            )
        )
        self._interval, self._interval_steps = [], self._steps
        self._interval_tokens = self._interval_samples = 0

    def _checkpoint(self) -> None:
        self._flush()
        state = self.state
        path = self.checkpoint_dir / f"step-{state.global_step:08d}"
        save_sft_checkpoint(path, self.model, self.optimizer, self.scheduler, state)
        self.callbacks.on_checkpoint(state.global_step, state.fractional_epoch, path, {})
        self.last_checkpoint = path
        for older in self.checkpoint_dir.glob("step-*"):
            if older != path:
                shutil.rmtree(older, ignore_errors=True)
