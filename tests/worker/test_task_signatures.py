"""Every task message the code sends fits the signature of the task that consumes it.

Producers publish by task name (the API and the scheduler never import the worker's
task functions), so nothing ties a ``send_task`` to its consumer but this test: a
keyword the consumer does not take raises TypeError on the worker, on every delivery
(an ``evaluate`` job once got ``team=`` it did not accept and was promoted only on the
retry). The call sites are found statically (ast) in every production package; the
task names, positional counts and keyword sets each may send are read from the code
(literals, module constants, dicts of task names, and a ``kwargs`` variable's possible
dict literals), then bound to the registered task's ``inspect.signature``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from commands.celery_app import make_app
from tunepool.messages import ADMIT_TASK, EVALUATE_TASK, TRAIN_TASK
from tunepool.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("commands", "api", "scheduler", "worker", "storage", "tunepool")
# Calls that send a task message: by name (``app.send_task``) or on a task object.
BY_NAME = {"send_task"}
ON_TASK = {"apply_async", "delay", "s", "si", "signature"}


@dataclass(frozen=True)
class Send:
    """One call site and every (task name, positional count, keywords) it may send."""

    where: str
    messages: tuple[tuple[str, int, frozenset[str]], ...]


class Unresolved(Exception):
    """A call site this test cannot read: make it literal, or teach the test its shape."""


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield name, ast.parse(path.read_text(), str(path))


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node
    return None


def _constant(module: str, node: ast.expr) -> Any:
    """A literal, or a module-level name (its own or imported) read from the module."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        mod = importlib.import_module(module)
        if hasattr(mod, node.id):
            return getattr(mod, node.id)
    if isinstance(node, ast.Attribute):
        return getattr(_constant(module, node.value), node.attr)
    raise Unresolved(ast.unparse(node))


def _task_names(module: str, node: ast.expr) -> list[str]:
    """``"x"``, ``NAME``, or ``TABLE[key]`` (every value of the dict ``TABLE``)."""
    if isinstance(node, ast.Subscript):
        table = _constant(module, node.value)
        if isinstance(table, dict):
            return [str(v) for v in table.values()]
        raise Unresolved(ast.unparse(node))
    value = _constant(module, node)
    if not isinstance(value, str):
        raise Unresolved(ast.unparse(node))
    return [value]


def _positional(node: ast.expr | None) -> list[int]:
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return [0]
    if isinstance(node, ast.List | ast.Tuple) and not any(
        isinstance(e, ast.Starred) for e in node.elts
    ):
        return [len(node.elts)]
    raise Unresolved(ast.unparse(node))


def _dict_keys(node: ast.expr) -> list[frozenset[str]]:
    """The key sets a dict expression may have: a literal, or either branch of ``a if c else b``."""
    if isinstance(node, ast.IfExp):
        return _dict_keys(node.body) + _dict_keys(node.orelse)
    if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
        return [frozenset(str(k.value) for k in node.keys if isinstance(k, ast.Constant))]
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "dict" and not node.args:
        return [frozenset(k.arg for k in node.keywords if k.arg is not None)]
    raise Unresolved(ast.unparse(node))


def _keywords(node: ast.expr | None, scope: ast.AST | None) -> list[frozenset[str]]:
    """The key sets of a ``kwargs=`` argument: a dict expression, or a local variable
    (every dict expression assigned to it in the enclosing function)."""
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return [frozenset()]
    if isinstance(node, ast.Name) and scope is not None:
        found = [
            keys
            for assign in ast.walk(scope)
            if isinstance(assign, ast.Assign | ast.AnnAssign)
            and any(
                isinstance(t, ast.Name) and t.id == node.id
                for t in (assign.targets if isinstance(assign, ast.Assign) else [assign.target])
            )
            and assign.value is not None
            for keys in _dict_keys(assign.value)
        ]
        if found:
            return found
    return _dict_keys(node)


def _on_task_name(module: str, receiver: ast.expr, app: Celery) -> str:
    """The registered name of the task object a method is called on."""
    try:
        task = _constant(module, receiver)
    except (Unresolved, AttributeError):
        raise Unresolved(ast.unparse(receiver)) from None
    name = getattr(task, "name", None)
    if not isinstance(name, str) or name not in app.tasks:
        raise Unresolved(ast.unparse(receiver))
    return name


def _sends(app: Celery) -> list[Send]:
    sends: list[Send] = []
    for module, tree in _modules():
        parents = _parents(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            method = node.func.attr
            if method not in BY_NAME | ON_TASK:
                continue
            where = f"{module}:{node.lineno}"
            keyword = {k.arg: k.value for k in node.keywords if k.arg is not None}
            scope = _enclosing_function(node, parents)
            try:
                if method in BY_NAME:
                    name_node = node.args[0] if node.args else keyword["name"]
                    names = _task_names(module, name_node)
                    counts = _positional(
                        node.args[1] if len(node.args) > 1 else keyword.get("args")
                    )
                    keys = _keywords(
                        node.args[2] if len(node.args) > 2 else keyword.get("kwargs"), scope
                    )
                else:
                    try:
                        names = [_on_task_name(module, node.func.value, app)]
                    except Unresolved:
                        if method in {"s", "si", "signature", "delay"}:
                            continue  # not a task (another library's method of that name)
                        raise
                    if method in {"apply_async", "signature"}:
                        counts = _positional(node.args[0] if node.args else keyword.get("args"))
                        keys = _keywords(
                            node.args[1] if len(node.args) > 1 else keyword.get("kwargs"), scope
                        )
                    else:
                        if any(isinstance(a, ast.Starred) for a in node.args) or (
                            len(keyword) != len(node.keywords)
                        ):
                            raise Unresolved(ast.unparse(node))
                        counts, keys = [len(node.args)], [frozenset(keyword)]
            except (Unresolved, KeyError) as exc:
                pytest.fail(f"{where}: cannot read the task message ({exc}); keep it literal")
            messages = tuple(
                (name, count, kws) for name, count, kws in product(names, counts, keys)
            )
            sends.append(Send(where, messages))
    return sends


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Celery:
    celery = make_app(Settings(home=tmp_path_factory.mktemp("tasks")))
    celery.loader.import_default_modules()
    return celery


def test_every_task_message_fits_its_consumers_signature(app: Celery) -> None:
    sends = _sends(app)
    names = {name for send in sends for name, _, _ in send.messages}
    # The publisher of every job type and the admission ask: the test cannot pass empty.
    assert {TRAIN_TASK, EVALUATE_TASK, ADMIT_TASK} <= names, names
    problems = []
    for send in sends:
        for name, count, keys in send.messages:
            if name not in app.tasks:
                problems.append(f"{send.where}: no task registered as {name!r}")
                continue
            signature = inspect.signature(app.tasks[name].run)
            try:
                signature.bind(*(["x"] * count), **dict.fromkeys(keys, "x"))
            except TypeError as exc:
                problems.append(
                    f"{send.where}: {name}{signature} cannot take {count} positional "
                    f"argument(s) and keywords {sorted(keys)}: {exc}"
                )
    assert not problems, "\n".join(problems)
