"""Resource limits and run results for sandboxed processes."""

from __future__ import annotations

import msgspec


class SandboxError(Exception):
    """A sandboxed run could not be set up (not: the program inside failed)."""


class Limits(msgspec.Struct, frozen=True):
    """Ceilings for one sandboxed process tree.

    cpu_seconds: CPU time per process (RLIMIT_CPU); wall_seconds: real time for the whole tree;
    memory_mb: address space per process (RLIMIT_AS); max_processes: processes the tree may hold at once;
    max_output_bytes: per stream, stdout and stderr each; the tree is killed when a stream passes it;
    max_file_bytes: largest file the tree may write (RLIMIT_FSIZE).
    """

    cpu_seconds: int = 10
    wall_seconds: float = 20.0
    memory_mb: int = 1024
    max_processes: int = 64
    max_output_bytes: int = 256 * 1024
    max_file_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds", "memory_mb", "max_processes", "max_output_bytes", "max_file_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"sandbox limit {name} must be positive, got {getattr(self, name)!r}")


class RunResult(msgspec.Struct):
    """Outcome of one sandboxed run.

    returncode: exit code, or -N when killed by signal N (None when the program never started);
    truncated: stdout or stderr passed max_output_bytes and was cut;
    killed_reason: None, "timeout", "output_limit", "cpu_limit", "file_size_limit" or "signal:N";
    isolation: which protections were active, e.g. "uid=65534 userns netns pidns proc mountns=private-root
    seccomp=sockets"; a layer that could not be set up reads "name=failed:reason" (see launcher.py).
    """

    returncode: int | None
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool
    killed_reason: str | None
    wall_s: float
    isolation: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.killed_reason is None
