"""Rules of the house that a refactor could silently break."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from graphlib import TopologicalSorter
from pathlib import Path

import grimp
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from storage.db import make_engine
from storage.schema import upgrade
from storage.tables import metadata

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_and_scheduler_never_import_torch() -> None:
    # The API runs on machines without GPUs and must start fast; it publishes by task name.
    code = (
        "import sys, api.app, api.wsgi, scheduler.ticks, scheduler.tasks, worker.tasks;"
        "import commands.celery_app;"
        "import worker.training.spec, tunepool.data.token_files, tunepool.data.stats;"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TUNEPOOL_HOME": "/tmp/tunepool-arch-test", "PATH": ""},
    )
    assert result.returncode == 0, f"imported {result.stdout.strip()} {result.stderr[-2000:]}"


def test_engine_imports_no_celery_flask_or_sql() -> None:
    code = (
        "import sys, worker.training.engine;"
        "bad = [m for m in ('celery', 'flask', 'sqlalchemy') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"imported {result.stdout.strip()} {result.stderr[-2000:]}"


def test_migrations_match_the_models(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], f"models changed without a migration: {diff}"


def test_every_package_is_a_floor_and_the_floors_have_no_cycle() -> None:
    # The layers contract (pyproject.toml, run by lint-imports) proves the floors point one
    # way only for the packages it names: a new top-level package left out of it could
    # import anything. So every package of the distribution, and every package directory
    # at the root, must be a root package and a layer of that contract...
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = {p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]}
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    linter = config["tool"]["importlinter"]
    (floors,) = [c for c in linter["contracts"] if c["type"] == "layers"]
    layered = {name.strip() for layer in floors["layers"] for name in re.split(r"[|:]", layer)}
    assert on_disk == shipped == set(linter["root_packages"]) == layered

    # ...and, read from the code itself, the imports between them form no cycle.
    graph = grimp.build_graph(*sorted(shipped), cache_dir=None)
    uses: dict[str, set[str]] = {package: set() for package in shipped}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            low, high = module.split(".")[0], imported.split(".")[0]
            if high != low and high in shipped:
                uses[low].add(high)
    order = list(TopologicalSorter(uses).static_order())  # CycleError names the cycle
    # The core is the ground floor; nothing imports the roof. (Which of the packages
    # nothing imports comes last is not an order: api and commands both qualify.)
    assert order[0] == "tunepool" and not uses["tunepool"], order
    assert not [low for low, used in uses.items() if "commands" in used], uses
