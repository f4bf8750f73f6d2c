"""Every job kind the worker runs, registered once each: a new kind is one engine and
one line here. The run envelope (``worker.envelope``) looks jobs up through
:func:`registration_for_job`; tests/worker/test_envelope.py checks that every job type
admission publishes has an engine here.
"""

from __future__ import annotations

from tunepool.hyperparameters import TASK_ALIASES
from worker.engines import causal_lm, compress, encoder, evaluate, inference, noop
from worker.engines.context import JobView
from worker.engines.registry import ANY_TASK, Registration, register, registration_for

FINETUNE = "finetune"
# Not a job type of its own: a fine-tune whose base model is "noop:..." (where allowed).
NOOP = "noop"
ENCODER_TASKS = tuple(sorted({name for names in TASK_ALIASES.values() for name in names}))

register(FINETUNE, encoder.train, tasks=ENCODER_TASKS, resumable=True)
register(FINETUNE, causal_lm.train, tasks=(causal_lm.TASK,), resumable=True)
register("inference", inference.infer)
register("compress", compress.compress)
register("evaluate", evaluate.evaluate)
register(NOOP, noop.run, resumable=True)


def registration_for_job(job: JobView, allow_noop_engine: bool) -> Registration:
    if job.type == FINETUNE and noop.requested(job.spec, allow_noop_engine) is not None:
        return registration_for(NOOP, ANY_TASK)
    return registration_for(job.type, job.task)
