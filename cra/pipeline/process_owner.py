"""Who owns a call-log row or a sandbox directory: a process identity that survives pid reuse, and whether that
process still runs (so rows and directories left by a process killed with SIGKILL can be finalised or reclaimed)."""

from __future__ import annotations

import os
from pathlib import Path


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "?"


def process_owner(pid: int | None = None) -> str:
    """Identity of a running process that survives pid reuse: "pid.start_ticks.boot_id"."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}.{process_start(pid) or '?'}.{_boot_id()}"


def owner_alive(owner: str | None) -> bool:
    """Is the process `owner` (from `process_owner`) still running? Unknown owners (rows written before owners
    were recorded) count as gone."""
    if not owner:
        return False
    pid, _, rest = owner.partition(".")
    start, _, boot = rest.partition(".")
    if not pid.isdigit() or boot != _boot_id():
        return False
    if start == "?":  # no /proc: the best we can do is whether the pid exists
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return process_start(int(pid)) == start
