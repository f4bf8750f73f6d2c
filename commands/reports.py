"""Plain-text evaluation reports, as a person reads them in a terminal."""

from __future__ import annotations

from typing import Any

AVERAGES = ("micro avg", "macro avg", "weighted avg")


def _table(title: str, rows: dict[str, Any], f1_key: str) -> list[str]:
    lines = [title, f"{'':>16} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"]
    labels = [k for k, v in rows.items() if isinstance(v, dict) and k not in AVERAGES]
    for label in [*sorted(labels), *[a for a in AVERAGES if a in rows]]:
        row = rows[label]
        if label in AVERAGES and label == next(a for a in AVERAGES if a in rows):
            lines.append("")
        lines.append(
            f"{label:>16} {row.get('precision', 0):9.4f} {row.get('recall', 0):9.4f} "
            f"{row.get(f1_key, 0):9.4f} {int(row.get('support', 0)):9d}"
        )
    return lines


def format_report(report: dict[str, Any]) -> str:
    """The entity-level (seqeval) table, then the token-level table over word labels."""
    body = report.get("report", report)
    lines: list[str] = []
    entity = (body.get("entity") or {}).get("default")
    if entity:
        lines += _table("Entity-level report (seqeval, default mode)", entity, "f1-score")
    strict = (body.get("entity") or {}).get("strict_iob2", {}).get("micro avg")
    if strict:
        lines.append(f"{'strict IOB2 f1':>16} {strict.get('f1-score', 0):9.4f}")
    token = body.get("token")
    if token:
        lines.append("")
        lines += _table("Token-level report (first word piece of each word)", token, "f1")
        if "accuracy" in token:
            lines.append(f"{'accuracy':>16} {token['accuracy']:9.4f}")
    if report.get("best_epoch") is not None:
        lines.append("")
        lines.append(f"best epoch {report['best_epoch']} by {report.get('metric_for_best', 'f1')}")
    return "\n".join(lines) if lines else "(no evaluation report)"
