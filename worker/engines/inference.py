"""Batch inference as an engine: every input of a dataset through one model version."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from worker.engines.context import EngineResult, RunContext, stopped

log = logging.getLogger(__name__)
# Inputs predicted between two progress reports and stop checks (the lease is renewed
# in the background whatever a chunk takes).
CHUNK = 256


def infer(ctx: RunContext) -> EngineResult:
    spec = ctx.job.spec
    source = ctx.inputs.model_version(str(spec["model_version_id"]), ctx.workdir / "model")
    dataset = ctx.inputs.dataset(str(spec["dataset"]), ctx.workdir / "input")
    # torch only once the inputs are here (a job whose inputs are gone fails at once).
    from worker.inference.inputs import read_inputs
    from worker.inference.model import load_model
    from worker.inference.predict import predict

    inputs = read_inputs(dataset.path, dataset.task, dataset.format)
    log.info("read %d inputs (%s %s)", len(inputs), dataset.task, dataset.format)
    if (reason := ctx.stop_requested()) is not None:
        return stopped(reason)
    loaded = load_model(source.directory)
    log.info("loaded %s:%d (%s)", source.name, source.version, source.task)
    started = time.perf_counter()
    output = ctx.workdir / "predictions.jsonl"
    entities = 0
    batch_size = int(spec.get("batch_size", 32))
    with output.open("w", encoding="utf-8") as out:
        for begin in range(0, len(inputs), CHUNK):
            if (reason := ctx.stop_requested()) is not None:
                return stopped(reason)
            chunk = inputs[begin : begin + CHUNK]
            for offset, (item, result) in enumerate(
                zip(chunk, predict(loaded, chunk, batch_size), strict=True)
            ):
                entities += len(result.get("entities", []))
                out.write(json.dumps(_record(begin + offset, item, result), ensure_ascii=False))
                out.write("\n")
            _report_progress(ctx, begin + len(chunk), len(inputs), started)
    if (reason := ctx.stop_requested()) is not None:
        return stopped(reason)
    seconds = time.perf_counter() - started
    return EngineResult(
        summary=f"{len(inputs)} predictions written",
        metrics={
            "inputs": len(inputs),
            "entities": entities,
            "seconds": round(seconds, 3),
            "inputs_per_s": round(len(inputs) / seconds, 2) if seconds else None,
            "model_version": source.version,
        },
        output_file=output,
    )


def _record(index: int, item: Any, result: dict[str, Any]) -> dict[str, Any]:
    """One output line: the input as given (a text, or its words) and its prediction."""
    given = {"text": item} if isinstance(item, str) else {"words": list(item)}
    return {"index": index, **given, **result}


def _report_progress(ctx: RunContext, done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    eta_s = round((total - done) / rate, 1) if rate else None
    ctx.callbacks.on_progress(
        {"done": done, "total": total, "inputs_per_s": round(rate, 2), "eta_s": eta_s}
    )
    eta = f"{eta_s:.0f}s" if eta_s is not None else "?"
    log.info("predicted %d/%d inputs, %.1f inputs/s, ETA %s", done, total, rate, eta)
