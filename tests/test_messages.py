"""Task and queue names are defined once (tunepool.messages) and registered under them."""

from __future__ import annotations

import ast
from pathlib import Path

from commands.celery_app import make_app
from tunepool import messages
from tunepool.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("commands", "api", "worker", "scheduler", "storage", "tunepool")
TASK_NAMES = {v for k, v in vars(messages).items() if k.endswith("_TASK")}
QUEUE_PREFIX = messages.worker_queue("")


def _spelled_names(path: Path) -> list[str]:
    """Literals in a module that spell a task or queue name (an f-string's fixed parts too)."""
    names = TASK_NAMES | {
        messages.CONTROL_QUEUE,
        messages.HOUSEKEEPING_QUEUE,
        messages.DATASET_QUEUE,
    }
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (node.value in names or node.value.startswith(QUEUE_PREFIX))
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    return found


def test_no_production_module_spells_a_task_or_queue_name() -> None:
    spelled = [
        hit
        for package in PRODUCTION
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "tunepool" / "messages.py"
        for hit in _spelled_names(path)
    ]
    assert spelled == [], "import the name from tunepool.messages instead:\n" + "\n".join(spelled)


def test_every_name_is_a_registered_task_and_every_project_task_has_a_name(tmp_path: Path) -> None:
    app = make_app(Settings(home=tmp_path))
    app.loader.import_default_modules()
    registered = {name for name in app.tasks if not name.startswith("celery.")}
    assert registered == TASK_NAMES
