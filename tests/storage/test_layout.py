"""The object-store key layout: byte-identical keys, and spelled in one module only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from storage import layout

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("commands", "api", "worker", "scheduler", "storage", "tunepool", "bench")
# A key's first segment, or a layout folder after an f-string field (``{root}models/``).
# URL routes (``/v1/models/...``, ``/teams/me``) have a ``/`` before the word and pass, as
# do rates (``jobs/s``).
KEY_LITERAL = re.compile(r"(?<![/\w.-])(teams|backups|datasets|jobs|models|checkpoints)/(?!s\b)")


def test_keys_keep_their_stored_layout() -> None:
    # Stored data must stay readable: these are the keys existing stores hold.
    assert layout.team_root("t1") == "teams/t1/"
    assert layout.team_kind_prefix("t1", "models") == "teams/t1/models/"
    assert layout.dataset_key("t1", "ds_1", "conll") == "teams/t1/datasets/ds_1/data.conll"
    assert layout.checkpoints_prefix("t1", "j1") == "teams/t1/jobs/j1/checkpoints/"
    assert layout.checkpoint_prefix("t1", "j1", 40) == "teams/t1/jobs/j1/checkpoints/step-00000040/"
    assert layout.predictions_key("t1", "j1") == "teams/t1/jobs/j1/predictions.jsonl"
    assert layout.model_prefix("t1", "ner", 3) == "teams/t1/models/ner/3/"
    assert layout.backup_prefix("20260101T000000Z") == "backups/20260101T000000Z/"
    assert layout.backup_manifest_key("N") == "backups/N/manifest.json"
    assert layout.backup_object_key("N", "database.json") == "backups/N/database.json"
    assert layout.BACKUP_STATUS_KEY == "backups/status.json"


def test_backup_name_of_reads_only_keys_inside_a_backup() -> None:
    assert layout.backup_name_of("backups/N/manifest.json") == ("N", "manifest.json")
    assert layout.backup_name_of("backups/status.json") is None
    assert layout.backup_name_of("teams/t1/models/ner/1/x") is None


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or bare expression statements."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def key_literals(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line: text`` for each string literal in ``path`` that spells a key."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in skip:
            continue
        if KEY_LITERAL.search(node.value):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return found


def production_modules(root: Path) -> list[Path]:
    modules = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts or path == root / "storage" / "layout.py":
                continue
            modules.append(path)
    return modules


def test_only_the_layout_module_spells_an_object_key() -> None:
    modules = production_modules(ROOT)
    assert len(modules) > 50  # the scan really walks the tree
    offenders = [hit for path in modules for hit in key_literals(path)]
    assert offenders == [], "spell object keys with storage.layout:\n" + "\n".join(offenders)


def test_the_scan_finds_a_key_spelled_elsewhere(tmp_path: Path) -> None:
    module = tmp_path / "writer.py"
    module.write_text(
        'def key(team: str, job: str) -> str:\n    return f"teams/{team}/jobs/{job}/out"\n'
        'ROUTE = "/v1/models/<name>"\n'
    )
    assert key_literals(module, tmp_path) == ["writer.py:2: 'teams/'"]
