"""The pre-flight report is torch-free, counts word pieces and tolerates oddities."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tunepool.data.findings import file_findings


def test_report_runs_without_importing_torch(tmp_path: Path) -> None:
    data = tmp_path / "train.conll"
    data.write_text("Ada\tB-PER\nwrites\tO\n\nBob\tB-PER\nreads\tO\n", encoding="utf-8")
    code = (
        "import sys; from pathlib import Path;"
        "from worker.training.validation import validation_report;"
        f"r = validation_report('ner', (Path({str(data)!r}), 'conll'), None, {{}}, 'minilm');"
        "assert r['train']['sentence_length_pieces']['max'] == 4, r;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "sys.exit(', '.join(bad) or None)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_findings_name_lines_of_mojibake_replacement_characters_and_empty_runs() -> None:
    text = "caf\u00c3\u00a9\tO\n\n\n\nbad \ufffd\tO\n"
    found = file_findings(text.encode("utf-8"))
    assert found["mojibake"] == {"count": 1, "lines": [1]}
    assert found["replacement_characters"] == {"count": 1, "lines": [5]}
    assert found["extra_empty_lines"] == {"count": 2, "lines": [3, 4]}
    assert found["line_endings"] == "lf"
