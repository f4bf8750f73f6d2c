"""The object-store key layout (DESIGN §6): every key and prefix the platform writes or reads.

This module is the only place that spells a key; writers and readers import from it, so the
layout cannot drift between the writer of an object and the code that finds it again
(``tests/storage/test_layout.py`` scans the tree for key literals elsewhere). Stored data
outlives releases: a change here must keep existing keys readable.

- ``teams/<team>/datasets/<id>/data.<fmt>``: an uploaded data set.
- ``teams/<team>/jobs/<job>/checkpoints/step-<n>/``: a job's checkpoint at step ``n``
  (zero-padded, so that listing order is step order).
- ``teams/<team>/jobs/<job>/predictions.jsonl``: a batch-inference job's output.
- ``teams/<team>/models/<name>/<version>/``: a registered model version.
- ``backups/<time>/``: one backup (its dump, then ``manifest.json`` last);
  ``backups/status.json``: the last backup attempt, read by the alerts.
- ``base-models/<name>/<source>/<build>/``: a builtin base model converted once for every
  worker (SmolLM2's GGUF as safetensors); ``<source>`` names what it was converted from,
  ``<build>`` one conversion, so two first conversions at once never write the same key.
  A build counts once its ``published.json`` is recorded (``worker.converted_models``).

Prefixes end in ``/`` so that ``teams/t1/`` never matches ``teams/t10/``.
"""

from __future__ import annotations

# The folders under a team's root; a team's stored bytes are summed per folder.
TEAM_KINDS = ("datasets", "models", "jobs")

BACKUPS_PREFIX = "backups/"
BACKUP_MANIFEST = "manifest.json"
BACKUP_STATUS_KEY = f"{BACKUPS_PREFIX}status.json"

PREDICTIONS_FILE = "predictions.jsonl"

BASE_MODELS_PREFIX = "base-models/"
BASE_MODEL_PUBLISHED = "published.json"


def team_root(team_id: str) -> str:
    """Everything a team owns lives under this prefix (disk use, isolation)."""
    return f"teams/{team_id}/"


def team_kind_prefix(team_id: str, kind: str) -> str:
    """One of ``TEAM_KINDS`` under a team's root."""
    if kind not in TEAM_KINDS:
        raise ValueError(f"unknown team object kind {kind!r}")
    return f"{team_root(team_id)}{kind}/"


def dataset_key(team_id: str, dataset_id: str, fmt: str) -> str:
    return f"{team_kind_prefix(team_id, 'datasets')}{dataset_id}/data.{fmt}"


def job_prefix(team_id: str, job_id: str) -> str:
    return f"{team_kind_prefix(team_id, 'jobs')}{job_id}/"


def checkpoints_prefix(team_id: str, job_id: str) -> str:
    return f"{job_prefix(team_id, job_id)}checkpoints/"


def checkpoint_prefix(team_id: str, job_id: str, step: int) -> str:
    return f"{checkpoints_prefix(team_id, job_id)}step-{step:08d}/"


def predictions_key(team_id: str, job_id: str) -> str:
    return f"{job_prefix(team_id, job_id)}{PREDICTIONS_FILE}"


def model_prefix(team_id: str, name: str, version: int) -> str:
    return f"{team_kind_prefix(team_id, 'models')}{name}/{version}/"


def base_model_source_prefix(name: str, source: str) -> str:
    """Every conversion of builtin base model ``name`` from ``source`` lies under this."""
    return f"{BASE_MODELS_PREFIX}{name}/{source}/"


def base_model_build_prefix(name: str, source: str, build: str) -> str:
    return f"{base_model_source_prefix(name, source)}{build}/"


def base_model_build_of(key: str, name: str, source: str) -> str | None:
    """The build prefix of a build's ``published.json`` key, else None."""
    prefix = base_model_source_prefix(name, source)
    if not key.startswith(prefix) or not key.endswith("/" + BASE_MODEL_PUBLISHED):
        return None
    build = key[len(prefix) : -len(BASE_MODEL_PUBLISHED) - 1]
    return f"{prefix}{build}/" if build and "/" not in build else None


def backup_prefix(name: str) -> str:
    return f"{BACKUPS_PREFIX}{name}/"


def backup_object_key(name: str, filename: str) -> str:
    """A file inside one backup's folder (the database dump)."""
    return f"{backup_prefix(name)}{filename}"


def backup_manifest_key(name: str) -> str:
    return backup_object_key(name, BACKUP_MANIFEST)


def backup_name_of(key: str) -> tuple[str, str] | None:
    """``(name, rest)`` for a key inside a backup's folder, None for any other key."""
    if not key.startswith(BACKUPS_PREFIX):
        return None
    name, slash, rest = key[len(BACKUPS_PREFIX) :].partition("/")
    return (name, rest) if slash else None
