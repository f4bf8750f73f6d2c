"""The training loop: steps, progress, stop requests, epoch-end evaluation, checkpoints.

Losses stay on the device between logging intervals: reading a loss with
`.item()` every step would make the host wait for the accelerator each time.
The only syncs are at logging, epoch ends and checkpoints.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_model

from tunepool.progress_rate import SmoothedRate
from worker.training.batching import epoch_seed, length_grouped_batches
from worker.training.callbacks import TrainCallbacks
from worker.training.checkpoint import TrainerState, save_checkpoint
from worker.training.distributed import DistContext
from worker.training.evaluation import autocast
from worker.training.progress import progress_event, report_due
from worker.training.spec import LOWER_IS_BETTER, Hyperparameters
from worker.training.token_classification import IGNORE_INDEX

Evaluator = Callable[[], tuple[dict[str, float], dict[str, Any]]]
# Encoded examples (each with `input_ids`) -> a padded batch of tensors.
Collate = Callable[[Sequence[Any]], dict[str, torch.Tensor]]


def labelled_counts(items: Sequence[Any]) -> list[int] | None:
    """How many labelled positions each training item has: the words of a sentence (its
    first pieces), one per text to classify. None for masked-LM, whose labels are drawn
    afresh for every batch."""
    counts: list[int] = []
    for item in items:
        labels = getattr(item, "labels", None)
        if labels is not None:
            counts.append(sum(1 for label in labels if label != IGNORE_INDEX))
        elif hasattr(item, "label"):
            counts.append(1)
        else:
            return None
    return counts


class TrainingLoop:
    """Runs epochs from `state` onwards; `run()` returns a stop reason or None."""

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        hp: Hyperparameters,
        state: TrainerState,
        sentences: Sequence[Any],
        collate: Collate,
        evaluate: Evaluator,
        callbacks: TrainCallbacks,
        device: torch.device,
        output_dir: Path,
        total_steps: int,
        forward_model: torch.nn.Module | None = None,
        context: DistContext | None = None,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        # The DDP wrapper in a data-parallel run; `model` is what is saved and evaluated.
        self.forward_model = forward_model or model
        self.context = context
        self.is_main = context is None or context.is_main
        self.hp, self.state, self.sentences = hp, state, sentences
        self.collate, self.evaluate, self.callbacks = collate, evaluate, callbacks
        self.device, self.total_steps = device, total_steps
        self.checkpoint_dir = output_dir / "checkpoints"
        self.best_path = output_dir / ".best" / "model.safetensors"
        self.last_checkpoint: Path | None = None
        self._lengths = [len(sentence.input_ids) for sentence in sentences]
        self._labelled = labelled_counts(sentences)
        # Labelled positions in an average (global) batch; every epoch has
        # ceil(len / batch_size) batches, whatever their order.
        batches = max(-(-len(sentences) // hp.batch_size), 1)
        self._labelled_per_batch = sum(self._labelled or ()) / batches or 1.0
        self._pending: list[torch.Tensor] = []  # per-step losses not yet read back
        self._interval_losses: list[float] = []
        self._interval_samples = self._interval_tokens = 0
        self._steps_this_run = self._interval_steps = 0
        self._rate = SmoothedRate()

    def run(self) -> str | None:
        hp, state = self.hp, self.state
        self.model.train()
        while state.epoch < hp.epochs and not self._patience_exhausted():
            state.epoch_seed = epoch_seed(hp.seed, state.epoch)
            order = length_grouped_batches(self._lengths, hp.batch_size, state.epoch_seed)
            state.batches_in_epoch = len(order)
            # A resumed run skips the batches its checkpoint had already trained on.
            while state.batches_done < len(order):
                window = order[state.batches_done : state.batches_done + hp.gradient_accumulation]
                self._step(window)
                state.batches_done += len(window)
                due = report_due(
                    state.global_step, self._steps_this_run, self.total_steps, hp.log_every_steps
                )
                if due:
                    self._report_progress()
                reason = self.callbacks.should_stop()
                if reason is not None:
                    self._checkpoint()
                    return reason
                every = hp.checkpoint_every_steps
                # The epoch-end checkpoint follows anyway when the epoch is over.
                if every and state.global_step % every == 0 and state.batches_done < len(order):
                    self._checkpoint()
            self._end_epoch()
        self._flush_losses()
        return None

    def _step(self, window: Sequence[Sequence[int]]) -> None:
        """One optimizer step over `window` micro-batches (gradient accumulation)."""
        step_loss = torch.zeros((), device=self.device)
        for indices in window:
            if self.context is not None:
                indices = self._shard(indices)
            batch = self.collate([self.sentences[i] for i in indices])
            self._interval_samples += len(indices)
            self._interval_tokens += int(batch["attention_mask"].sum())  # CPU tensor: no sync
            inputs = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
            with autocast(self.device):
                loss = self.forward_model(**inputs).loss * self._weight(batch) / len(window)
            loss.backward()
            step_loss += loss.detach().float()
        if self.hp.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hp.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1
        self._steps_this_run += 1
        self._pending.append(step_loss)

    def _weight(self, batch: dict[str, torch.Tensor]) -> float:
        """How much this batch's mean loss counts: its labelled tokens over the average
        batch's, so that every labelled token weighs the same in every batch.

        Length-grouped batches differ in size by design: a batch of short sentences holds
        a few dozen labelled words, a batch of long ones several hundred. A plain mean per
        batch would make each word of a short batch count several times as much as a word
        of a long one, an objective random batches do not have. (In a data-parallel run the
        average batch is the global one, and DDP's mean over the ranks divides by the
        world size again.)
        """
        if self._labelled is None:
            return 1.0
        labelled = int((batch["labels"] != IGNORE_INDEX).sum())  # CPU tensor: no sync
        world = self.context.world if self.context is not None else 1
        return labelled * world / self._labelled_per_batch

    def _shard(self, indices: Sequence[int]) -> list[int]:
        """This rank's slice of a global batch; never empty, since every rank must
        run backward for DDP's gradient all-reduce (a tiny last batch repeats one)."""
        assert self.context is not None
        shard = self.context.shard(indices)
        return shard or [indices[self.context.rank % len(indices)]]

    def _flush_losses(self) -> None:
        """Read the pending per-step losses back in one transfer."""
        if not self._pending:
            return
        stacked = torch.stack(self._pending)
        if self.context is not None:
            stacked = self.context.mean(stacked)  # the loss of the global batch
        values = stacked.tolist()
        first = self.state.global_step - len(values) + 1
        self.state.loss_history.extend(
            {"step": first + offset, "loss": value} for offset, value in enumerate(values)
        )
        self._interval_losses.extend(values)
        self._pending.clear()

    def _report_progress(self) -> None:
        self._flush_losses()
        losses = self._interval_losses
        if self.context is not None:
            counts = torch.tensor(
                [self._interval_samples, self._interval_tokens], device=self.device
            )
            samples, tokens = self.context.total(counts).tolist()
            self._interval_samples, self._interval_tokens = int(samples), int(tokens)
        self.callbacks.on_progress(
            progress_event(
                self.state,
                self.hp.epochs,
                self.total_steps,
                loss=sum(losses) / len(losses) if losses else None,
                learning_rate=float(self.scheduler.get_last_lr()[0]),
                rate=self._rate,
                steps=self._steps_this_run - self._interval_steps,
                samples=self._interval_samples,
                tokens=self._interval_tokens,
            )
        )
        self._interval_losses = []
        self._interval_samples = self._interval_tokens = 0
        self._interval_steps = self._steps_this_run

    def _end_epoch(self) -> None:
        self._flush_losses()
        hp, state = self.hp, self.state
        epoch = state.epoch
        last = epoch == hp.epochs - 1
        if hp.eval_every_epoch or last:
            metrics, report = self.evaluate()
            number = epoch + 1  # what reports, events and people call this epoch
            self.callbacks.on_evaluate(number, metrics)
            state.eval_history.append({"epoch": number, "step": state.global_step, **metrics})
            if self._improves(metrics[hp.metric_for_best]):
                state.best_metric = metrics[hp.metric_for_best]
                state.best_step, state.best_epoch = state.global_step, number
                state.best_metrics, state.best_report = metrics, report
                if self.is_main:
                    self.best_path.parent.mkdir(parents=True, exist_ok=True)
                    save_model(self.model, str(self.best_path))
        state.epoch, state.batches_done = epoch + 1, 0
        state.epochs_completed = state.epoch
        # After the last epoch (or early stopping) the final model is written instead.
        if not last and not self._patience_exhausted():
            self._checkpoint()

    def _improves(self, value: float) -> bool:
        best = self.state.best_metric
        if best is None:
            return True
        # Losses improve downwards, every other metric (f1, accuracy...) upwards.
        return value < best if self.hp.metric_for_best in LOWER_IS_BETTER else value > best

    def _patience_exhausted(self) -> bool:
        """Early stopping: the last `early_stopping_patience` evaluations all came
        after the best one. Derived from the saved history, so it survives a resume."""
        patience, state = self.hp.early_stopping_patience, self.state
        if not patience or state.best_step is None:
            return False
        later = [entry for entry in state.eval_history if entry["step"] > state.best_step]
        return len(later) >= patience

    def _metrics_at_step(self) -> dict[str, float]:
        """The metrics of this very step, not the best so far: its training loss, and the
        validation scores (as ``valid_<name>``) when an evaluation ran at this step."""
        state, metrics = self.state, {}
        if state.loss_history and state.loss_history[-1]["step"] == state.global_step:
            metrics["train_loss"] = float(state.loss_history[-1]["loss"])
        last = state.eval_history[-1] if state.eval_history else None
        if last is not None and last["step"] == state.global_step:
            metrics.update({f"valid_{k}": v for k, v in last.items() if k not in ("epoch", "step")})
        return metrics

    def _checkpoint(self) -> None:
        self._flush_losses()
        state = self.state
        path = self.checkpoint_dir / f"step-{state.global_step:08d}"
        self.last_checkpoint = path
        if not self.is_main:
            return  # rank 0 writes the checkpoint of a data-parallel run
        best = self.best_path if self.best_path.exists() else None
        save_checkpoint(path, self.model, self.optimizer, self.scheduler, state, best)
        self.callbacks.on_checkpoint(
            state.global_step, state.fractional_epoch, path, self._metrics_at_step()
        )
        self.last_checkpoint = path
        # Older local checkpoints are superseded (and already handed to the caller,
        # who may have deleted them, or this one, already).
        for older in self.checkpoint_dir.glob("step-*"):
            if older != path:
                shutil.rmtree(older, ignore_errors=True)
