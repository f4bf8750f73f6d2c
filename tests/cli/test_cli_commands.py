"""The command line's shape: ``--version``, ``--json`` on every read command."""

from __future__ import annotations

import click
from click.testing import CliRunner

from commands.cli import main
from tunepool import __version__

# Commands that run or change the platform and read nothing back to print.
NOT_READS = {
    "up",
    "worker",
    "serve",
    "control",
    "beat",
    "flower",
    "demo",
    "db upgrade",
    "admin create-team",
    "restore",
}


def _leaves(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_leaves(command, f"{path} "))
        else:
            found[path] = command
    return found


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"tunepool {__version__}\n"


def test_every_read_command_takes_json() -> None:
    commands = _leaves(main)
    assert {"datasets show", "models show", "infer", "backup"} <= set(commands)
    without = [
        path
        for path, command in sorted(commands.items())
        if path not in NOT_READS
        and not any("--json" in p.opts for p in command.params if isinstance(p, click.Option))
    ]
    assert without == []
