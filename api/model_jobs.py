"""Jobs that use a registered model: batch ``inference`` and int8 ``compress``.

``POST /v1/jobs`` hands bodies of these types to :func:`submit_model_job`; they then
go through the same admission, quotas and state machine as fine-tunes (published to
``tunepool.infer`` / ``tunepool.compress``). The model reference is resolved at
submission and the version pinned in the spec, so moving an alias later does not
change what a queued job runs. ``GET /v1/jobs/<id>/output`` serves the predictions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, redirect

from api.admission_checks import check_order
from api.context import db, platform, team_id
from api.datasets import owned_dataset
from api.errors import ApiError, invalid
from api.openapi import documented
from api.schemas import CompressJobCreate, InferenceJobCreate
from storage.blobs import ChecksumMismatch
from storage.job_factory import JobOrder
from storage.models import ModelVersion, StoredObject
from storage.registry import cannot_predict, parse_ref, resolve
from storage.states import JobState

bp = Blueprint("model_jobs", __name__, url_prefix="/v1/jobs")
MODEL_JOB_TYPES = ("inference", "compress")
_CHUNK = 1024 * 1024


def _model(ref: str) -> ModelVersion:
    try:
        mv = resolve(db(), team_id(), parse_ref(ref))
    except (ValueError, LookupError) as exc:
        raise invalid("model", str(exc).strip("'\"")) from None
    # Refused here, not found out on the worker.
    if (why := cannot_predict(mv)) is not None:
        raise invalid("model", why)
    return mv


def submit_model_job(body: dict[str, Any]) -> tuple[Response, int]:
    from api.jobs import accept

    spec: InferenceJobCreate | CompressJobCreate
    if body.get("type") == "inference":
        spec = InferenceJobCreate.model_validate(body)
        mv = _model(spec.model)
        # Any dataset is an input (worker.inference.inputs): token-classification data
        # gives words (one label each comes back), other datasets give texts.
        dataset = owned_dataset(spec.dataset, "dataset")
        if dataset.task == "causal-lm":
            # Conversations have no one text to label; chat models answer them through
            # /v1/chat/completions (batch generation over a file is not built yet).
            raise invalid(
                "dataset",
                f"{dataset.id} is a chat dataset: batch inference takes text or token "
                "data; send conversations to /v1/chat/completions",
            )
        extra: dict[str, Any] = {"dataset": dataset.id, "batch_size": spec.batch_size}
    else:
        spec = CompressJobCreate.model_validate(body)
        mv = _model(spec.model)
        extra = {"quantization": "dynamic-int8"}
    job_spec = {
        "model": spec.model,
        "model_version_id": mv.id,
        "model_name": mv.name,
        "model_version": mv.version,
        **extra,
        "estimated_runtime_s": spec.estimated_runtime_s,
    }
    # The same checks as a fine-tune's (draining queue, priority cap, quota).
    checked = check_order(
        JobOrder(
            team_id=team_id(),
            type=str(body["type"]),
            task=mv.task,
            spec=job_spec,
            priority=spec.priority,
            model_name=mv.name,
            max_attempts=spec.max_attempts,
        )
    )
    return accept(db(), checked)


@bp.get("/<job_id>/output")
@documented(
    {
        200: "the predictions, one JSON object a line, streamed and verified",
        302: "on S3: a presigned URL of the predictions",
    },
    (404, 409),
    tag="jobs",
    media={200: ["application/x-ndjson"]},
)
def output(job_id: str) -> Response:
    """The predictions of a finished inference job: JSONL, streamed and verified."""
    from api.jobs import owned_job

    job = owned_job(job_id)
    if job.type != "inference":
        raise ApiError(404, "not_found", f"job {job_id} is a {job.type} job; it has no output")
    if job.state != JobState.SUCCEEDED.value:
        raise ApiError(
            409, "conflict", f"job {job_id} is {job.state}; output exists once it succeeds", "state"
        )
    key = str((job.metrics or {}).get("output_key") or "")
    row = db().get(StoredObject, key) if key else None
    if row is None:
        raise ApiError(404, "not_found", f"job {job_id} output not found")
    store = platform().store
    url = store.presign(key, 3600)
    if url is not None:
        return redirect(url, 302)  # type: ignore[return-value]
    return Response(
        _verified(store, key, row.size, row.sha256),
        mimetype="application/x-ndjson",
        headers={
            "Content-Disposition": f'attachment; filename="{job_id}-predictions.jsonl"',
            "Content-Length": str(row.size),
            "X-Checksum-Sha256": row.sha256,
        },
    )


def _verified(store: Any, key: str, size: int, sha256: str) -> Iterator[bytes]:
    digest, sent = hashlib.sha256(), 0
    with store.open(key) as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            sent += len(chunk)
            yield chunk
    if sent != size or digest.hexdigest() != sha256:
        raise ChecksumMismatch(key, sha256, digest.hexdigest())
