"""What an engine is given and what it gives back: plain data, no Celery, Flask or SQL.

The run envelope (``worker.envelope``) claims the job, holds its lease, fetches what
the engine asks for through ``Inputs``, and records whatever the engine returns: an
engine only computes. Tests and benchmarks can hand an engine a context of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from storage.attempts import StopReason
from worker.training.callbacks import TrainCallbacks


class InputMissing(LookupError):
    """Something the job names is gone or is not its team's: the job fails with this
    message, on every attempt alike."""


@dataclass(frozen=True)
class JobView:
    """The job as its engine sees it: what to run, never how it is stored."""

    id: str
    team_id: str
    type: str
    task: str
    spec: Mapping[str, Any]
    model_name: str | None
    attempt: int
    # One data-parallel process per GPU that admission gave the job (DDP when > 1).
    world_size: int = 1


@dataclass(frozen=True)
class LocalDataset:
    """A dataset of the job's team, downloaded and verified against its checksum."""

    id: str
    path: Path
    format: str
    task: str
    sha256: str


@dataclass(frozen=True)
class LocalModel:
    """A model version of the job's team, its files downloaded to ``directory``."""

    id: str
    name: str
    version: int
    task: str
    base_model: str
    lineage: Mapping[str, Any]
    directory: Path


@dataclass(frozen=True)
class BaseModel:
    """What a fine-tune starts from: ``source`` is what the engine loads (an operator's
    directory or hub id, or a team version's downloaded directory). ``version_id``: the
    team's model version it is, if it is one (the new version links to it)."""

    name: str
    source: str
    version_id: str | None = None


class Inputs(Protocol):
    """Downloads an engine asks for, each checked against the job's team."""

    def dataset(self, dataset_id: str, stem: Path) -> LocalDataset:
        """The dataset's file at ``stem`` with its format as suffix; InputMissing if gone."""

    def model_version(self, version_id: str, target: Path) -> LocalModel:
        """The version's files into ``target``; InputMissing if gone."""

    def production_version(self, name: str, target: Path) -> LocalModel | None:
        """The version ``name@production`` points at, into ``target``; None if none."""

    def base_model(self, name: str, target: Path) -> BaseModel:
        """``name`` by the submit's rule (storage.base_models); a team's version is
        downloaded into ``target``. ``BaseModelRefused`` if it is no longer allowed."""

    def resume_checkpoint(self, target: Path) -> Path | None:
        """The job's newest checkpoint, downloaded into ``target`` (this attempt then
        starts from its step); None on a first run."""


@dataclass(frozen=True)
class EngineSettings:
    """The platform's settings an engine may read."""

    # Checkpoint interval when the job's hyperparameters do not name one (0: epochs only).
    checkpoint_every_steps: int = 0
    # Where built-in base models are converted once and kept between jobs.
    model_cache_dir: Path = Path.home() / ".cache" / "tunepool" / "models"
    # Fault tests and bench/load.py only: "noop:<behaviour>" base models run the no-op engine.
    allow_noop_engine: bool = False


@dataclass(frozen=True)
class RunContext:
    job: JobView
    workdir: Path  # this attempt's scratch directory; the envelope deletes it afterwards
    inputs: Inputs
    # Progress, evaluations and checkpoints (training), progress only (the others).
    callbacks: TrainCallbacks
    # At a safe point: a reason to stop (the engine returns it as ``stopped``), else None.
    # Engines that cannot resume are only told of cancels and a lost lease.
    stop_requested: Callable[[], StopReason | None]
    settings: EngineSettings = field(default_factory=EngineSettings)


@dataclass(frozen=True)
class ModelOutput:
    """A directory to register as a new version of ``name`` (None: the job's model name)."""

    directory: Path
    task: str
    base_model: str
    name: str | None = None
    lineage: Mapping[str, Any] = field(default_factory=dict)
    # Scalar metrics kept on the version (the registry shows them).
    metrics: Mapping[str, Any] = field(default_factory=dict)
    # "model": loads on its own; "adapter": a PEFT adapter loaded over base_model.
    artifact: str = "model"
    # The team's model version it was trained from, when the base was one.
    base_version_id: str | None = None


@dataclass(frozen=True)
class Decision:
    """A scheduled retrain's champion/challenger scores, recorded with the job's success."""

    schedule_run: str
    model_name: str
    candidate_version: int
    candidate_score: float
    champion_version: int | None
    champion_score: float | None
    scores: Mapping[str, Any]


@dataclass(frozen=True)
class EngineResult:
    """What came of a run. With ``stopped`` set nothing else is recorded: the envelope
    records why it stopped. Otherwise the outputs are stored and the job succeeds with
    ``metrics``; ``summary`` is the reason its success event gives."""

    summary: str = ""
    metrics: Mapping[str, Any] = field(default_factory=dict)
    stopped: StopReason | None = None
    model: ModelOutput | None = None
    # Predictions (JSON lines) to store as the job's output.
    output_file: Path | None = None
    decision: Decision | None = None

    @property
    def uploads(self) -> bool:
        return self.model is not None or self.output_file is not None


def stopped(reason: StopReason) -> EngineResult:
    return EngineResult(stopped=reason)


Engine = Callable[[RunContext], EngineResult]
