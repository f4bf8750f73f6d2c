"""The live progress of ``tunepool jobs logs -f`` for each job kind (commands.job_view)."""

from __future__ import annotations

import io

from rich.console import Console

from commands.cli_progress import progress_line
from commands.job_view import JobView, summary_lines


def report(step: int, total: int = 5, epochs: int = 1, **extra: object) -> dict:
    epoch = (step - 1) * epochs // total + 1
    return {
        "step": step,
        "total_steps": total,
        "epoch": epoch,
        "epochs": epochs,
        "loss": 0.5,
        "tokens_per_s": 900,
        "eta_s": 6.0,
        **extra,
    }


def test_training_progress_shows_steps_of_the_total_and_epochs_from_one() -> None:
    line = progress_line(report(9, total=18, epochs=2), 2)
    assert line.startswith("[############............]  50% step 9/18  epoch 1/2")
    assert "900 tok/s" in line and "ETA 0:00:06" in line
    assert progress_line(report(18, total=18, epochs=2), 2).startswith(
        "[########################] 100% step 18/18  epoch 2/2"
    )


def test_a_job_of_five_steps_has_a_bar_from_its_first_step() -> None:
    assert progress_line(report(1), 1).startswith("[####....................]  20% step 1/5")


def test_inference_progress_shows_inputs_done_rate_and_eta() -> None:
    data = {"done": 512, "total": 2048, "inputs_per_s": 256.0, "eta_s": 6.0}
    line = progress_line(data, None)
    assert line.startswith("[######..................]  25% 512/2,048 inputs")
    assert "256.0 inputs/s" in line and "ETA 0:00:06" in line


def test_on_a_terminal_the_bar_is_drawn_by_rich_and_ends_full() -> None:
    out = io.StringIO()
    view = JobView(console=Console(file=out, force_terminal=True, width=120))
    assert view.live
    view.line("info    attempt 1 claimed by wA")
    view.progress(report(1), 1)
    view.progress(report(3), 1)
    view.line("evaluation epoch 1: f1 0.5000")
    # Early stopping: succeeded after step 3 of 5; the bar still ends at 100 %.
    view.done("succeeded")
    text = out.getvalue()
    assert "attempt 1 claimed by wA" in text and "evaluation epoch 1" in text
    assert " 20%" in text and "step 1/5" in text
    assert "100%" in text and "done" in text


def test_the_summary_says_how_long_the_best_score_and_the_model() -> None:
    job = {
        "id": "job_1",
        "state": "succeeded",
        "created_at": "2026-12-07T01:00:00Z",
        "started_at": "2026-12-07T01:00:05Z",
        "finished_at": "2026-12-07T01:02:05Z",
        "model_name": "cli-ner",
        "model_version_id": "mv_1",
        "metrics": {"f1": 0.8125, "report": {"metric_for_best": "f1", "best_epoch": 2}},
    }
    assert summary_lines(job, 1) == [
        "job job_1 succeeded in 0:02:00 (waited 0:00:05 to start)",
        "best f1 0.8125 (epoch 2)",
        "model cli-ner:1 (mv_1)",
    ]


def test_an_inference_summary_names_no_model_it_did_not_make() -> None:
    job = {
        "id": "job_2",
        "state": "succeeded",
        "model_name": "cli-ner",  # the model it predicted with
        "model_version_id": None,
        "metrics": {"inputs": 1200, "inputs_per_s": 85.3},
    }
    assert summary_lines(job) == ["job job_2 succeeded", "1,200 inputs predicted, 85.3/s"]
