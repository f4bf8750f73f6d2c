"""Job processes yield the CPU: a nicer process, and a lighter session where it owns one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from worker.priority import autogroup_nice

PROBE = """
import json, os, sys
from worker.priority import autogroup_nice, yield_cpu
before = (os.getpriority(os.PRIO_PROCESS, 0), autogroup_nice())
yield_cpu(int(sys.argv[1]))
after = [os.getpriority(os.PRIO_PROCESS, 0), autogroup_nice()]
print(json.dumps({"before": before, "after": after}))
"""


def _probe(nice: int, own_session: bool) -> dict[str, list[int | None]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(nice)],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=own_session,
    ).stdout
    result: dict[str, list[int | None]] = json.loads(out)
    return result


def test_a_worker_in_its_own_session_lowers_its_priority_and_its_sessions() -> None:
    seen = _probe(5, own_session=True)
    (nice_before, group_before), (nice_after, group_after) = seen["before"], seen["after"]
    assert nice_after == min(19, (nice_before or 0) + 5)
    if group_before is None:
        pytest.skip("this kernel has no autogroups")
    assert group_after == 5


def test_a_worker_started_from_a_shell_leaves_the_shells_session_alone() -> None:
    ours = autogroup_nice()
    seen = _probe(5, own_session=False)
    assert seen["after"][0] == min(19, (seen["before"][0] or 0) + 5)
    # The probe shares this test's session: its weight is this test's, unchanged.
    assert seen["after"][1] == seen["before"][1] == ours
    assert autogroup_nice() == ours


def test_nice_zero_changes_nothing() -> None:
    seen = _probe(0, own_session=True)
    assert seen["after"] == seen["before"]
