"""The model card (README.md) written beside every trained model.

It states what a reader of the model directory needs before using it: the task,
the base model, the data it saw, the hyperparameters as used ("auto" resolved),
the best epoch's scores by the chosen metric and the per-epoch history. The
front matter is the Hugging Face hub's, so the card also renders there.
"""

from __future__ import annotations

from typing import Any

_INTRO = {
    "token-classification": "Token classification (BIO named-entity tagging)",
    "sequence-classification": "Sequence (text) classification",
    "masked-lm": "Masked-language-model continued pre-training (domain adaptation)",
}


def model_card(base_model: str, report: dict[str, Any]) -> str:
    task = report.get("task", "token-classification")
    metrics: dict[str, Any] = report.get("metrics", {})
    lines = [
        "---",
        f"pipeline_tag: {'fill-mask' if task == 'masked-lm' else task}",
        "library_name: transformers",
        "tags: [tunepool]",
        "---",
        "",
        f"# {_INTRO.get(task, task)}",
        "",
        f"Fine-tuned by tunepool from `{base_model}`.",
        "",
        "## Data",
        "",
    ]
    lines += [f"- {key.replace('_', ' ')}: {value}" for key, value in report["data"].items()]
    if report.get("labels"):
        lines.append(f"- labels ({len(report['labels'])}): {', '.join(report['labels'])}")
    lines += ["", "## Hyperparameters", "", "| name | value |", "| --- | --- |"]
    for key, value in report.get("hyperparameters", {}).items():
        if key != "auto":
            lines.append(f"| {key} | {value} |")
    lines += [
        "",
        "## Scores",
        "",
        f"Best epoch {report.get('best_epoch')} (step {report.get('best_step')}) by "
        f"`{report.get('metric_for_best')}` on the validation data; this is the saved model.",
        "",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {_number(value)} |" for key, value in metrics.items()]
    history = report.get("history", [])
    if history:
        keys = [key for key in history[0] if key not in ("epoch", "step")][:6]
        lines += ["", "### Per epoch", "", "| epoch | step | " + " | ".join(keys) + " |"]
        lines.append("| --- " * (len(keys) + 2) + "|")
        for entry in history:
            values = [_number(entry.get(key)) for key in keys]
            lines.append(f"| {entry['epoch']} | {entry['step']} | " + " | ".join(values) + " |")
    lines += ["", "The full evaluation report is `eval_report.json` in this directory.", ""]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
