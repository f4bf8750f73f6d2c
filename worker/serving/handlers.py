"""What a serving worker answers, one function per request kind.

A handler takes the request's body (and the reply, to stream chunks into before it
returns) and returns the answer; a ``Refused`` becomes the client's 4xx. The bodies
are built by ``api/serving.py``'s callers and checked there (team, model, inputs):
what reaches a handler has passed the API's validation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from storage.blobs import ChecksumMismatch, Recorded, fetch_verified
from storage.objects.base import ObjectNotFound, ObjectStore
from tunepool.serving_protocol import Failure, Kind, Refused
from tunepool.settings import Settings
from worker.serving.shelf import ModelShelf


class Reply(Protocol):
    def chunk(self, data: Any) -> None: ...


Handler = Callable[[dict[str, Any], Reply], Any]


def predict_handler(shelf: ModelShelf) -> Handler:
    def predict(body: dict[str, Any], _reply: Reply) -> dict[str, Any]:
        objects = [Recorded(key, int(size), sha256) for key, size, sha256 in body["objects"]]
        try:
            outputs = shelf.predict(body["model"], body["prefix"], objects, body["inputs"])
        except (ObjectNotFound, ChecksumMismatch) as exc:
            raise Refused(Failure(503, "model_unavailable", f"model files: {exc}")) from None
        except ValueError as exc:  # e.g. an architecture the inference engine cannot run
            raise Refused(Failure(422, "invalid", f"model: {exc}", "model")) from None
        return {"predictions": outputs}

    return predict


def report_handler(store: ObjectStore, settings: Settings) -> Handler:
    def report(body: dict[str, Any], _reply: Reply) -> dict[str, Any]:
        from tunepool.data.errors import DataError
        from worker.training.validation import validation_report

        # An allow-list name is resolved here: the worker's own settings say where it lies.
        # Anything else (a team's model) has no local tokenizer: the report goes without.
        name = str(body["base_model"])
        source = settings.allowed_base_models.get(name, name)
        with tempfile.TemporaryDirectory(prefix="tunepool-report-") as tmp:
            files: list[tuple[Path, str]] = []
            for index, dataset in enumerate([body["train"], body.get("validation")]):
                if dataset is None:
                    continue
                path = Path(tmp) / f"{index}.{dataset['format']}"
                recorded = Recorded(dataset["key"], int(dataset["size"]), dataset["sha256"])
                try:
                    fetch_verified(store, recorded, path)
                except (ObjectNotFound, ChecksumMismatch) as exc:
                    raise Refused(Failure(503, "data_unavailable", f"dataset: {exc}")) from None
                files.append((path, dataset["format"]))
            try:
                return validation_report(
                    body["task"],
                    files[0],
                    files[1] if len(files) > 1 else None,
                    body.get("hyperparameters") or {},
                    source,
                )
            except DataError as exc:
                field = "train_dataset" if len(files) == 1 else "dataset"
                raise Refused(Failure(422, "invalid_data", str(exc), field, exc.line)) from None

    return report


def standard_handlers(
    shelf: ModelShelf, store: ObjectStore, settings: Settings
) -> dict[str, Handler]:
    return {Kind.PREDICT: predict_handler(shelf), Kind.REPORT: report_handler(store, settings)}
