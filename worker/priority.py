"""Job processes yield the CPU to the control plane on a host they share with it.

A user waiting on the API, an admission pass and the database matter more than a job's
next step, which runs for hours anyway. On a host of its own (a GPU node) this changes
nothing: there is nothing else to yield to.
"""

from __future__ import annotations

import os
from pathlib import Path

AUTOGROUP = Path("/proc/self/autogroup")


def yield_cpu(nice: int) -> None:
    """Lower this process's CPU priority by ``nice``; its job processes inherit it.

    Linux (with autogroup, the default on desktops and many servers) first shares the
    CPU between sessions and only then between the processes of a session by their
    nice values. A worker started in a session of its own (``tunepool up``, setsid, a
    service manager) competes as one whole session with the API's, whatever its nice
    value, so its session's weight is lowered too; but only when the session is the
    worker's own, never the shell's that started it.
    """
    if nice <= 0:
        return
    os.nice(nice)
    if os.getsid(0) != os.getpid() or not AUTOGROUP.exists():
        return
    try:
        AUTOGROUP.write_text(str(nice))
    except OSError:  # not allowed here (some containers): the nice value still applies
        pass


def autogroup_nice() -> int | None:
    """This session's autogroup nice value, where the kernel has autogroups."""
    try:
        # "/autogroup-85 nice 10"
        return int(AUTOGROUP.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None
