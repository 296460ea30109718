"""Run an untrusted command in a throwaway directory with rlimits, no network and a killable process tree.

Protection layers (see launcher.py): root drops to an unprivileged uid (another user keeps its own uid, never
root inside); a user namespace makes RLIMIT_NPROC count only the sandbox's own processes; a network namespace
leaves no usable interface; a mount namespace with a private root shows only the sandbox directory, the toolchain
read-only (READONLY_PATHS), a fresh /tmp and /proc; a pid namespace lets the whole tree be killed at once; a
seccomp filter refuses unix and internet sockets. When the namespaces cannot be created, the network falls back to
an LD_PRELOAD socket shim and the filesystem to uid + cwd/HOME/TMPDIR confinement; when the private root cannot be
built, every mount but the sandbox directory is read-only. `RunResult.isolation` always says what was active.
"""

from __future__ import annotations

import functools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from cra.pipeline.process_owner import process_start
from cra.pipeline.sandbox.limits import Limits, RunResult, SandboxError
from cra.pipeline.sandbox.network_shim import build_socket_shim

LAUNCHER = Path(__file__).with_name("launcher.py")
UNPRIVILEGED_UID = 65534  # "nobody"
UNPRIVILEGED_GID = 65534
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# The launcher and its pid-1 init live in the sandbox's user namespace too and count against RLIMIT_NPROC.
LAUNCHER_PROCESSES = 2
_READ_CHUNK = 65536
# What a build needs from the host, bound read-only into the sandbox's private root: the toolchain and its
# libraries, and the dynamic loader's configuration. Merged-/usr symlinks (/bin -> usr/bin) are recreated.
READONLY_PATHS: tuple[str, ...] = (
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
)


class IsolationPlan(msgspec.Struct, frozen=True):
    """How sandboxed runs are isolated on this host (probed once per process)."""

    namespaces: bool
    drop_uid: int | None
    preload_shim: str | None
    description: str


def _drop_uid() -> int | None:
    return UNPRIVILEGED_UID if os.geteuid() == 0 else None


def _owner_tag() -> str:
    return f"{os.getpid()}.{process_start(os.getpid()) or 0}"


def make_sandbox_dir(prefix: str = "cra-sandbox-") -> Path:
    """A fresh temp directory that the (possibly unprivileged) sandbox user can write to.

    Its name carries the owning process (pid and start time) so that a later process can reclaim the directories
    of one that died without cleaning up (`reclaim_leaked_sandbox_dirs`)."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{_owner_tag()}-"))
    (path / "home").mkdir()
    (path / "tmp").mkdir()
    return path


def remove_sandbox_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


_OWNED_DIR = re.compile(r"cra-(?:sandbox|probe|test)-(\d+)\.(\d+)-[^/]+")


def reclaim_leaked_sandbox_dirs(temp_dir: str | Path | None = None) -> list[Path]:
    """Remove the sandbox directories (in the temp dir) whose owning process is gone, e.g. killed with SIGKILL
    mid-run; a directory of a live process, or of unknown owner, is left alone. Returns what was removed."""
    base = Path(temp_dir or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _OWNED_DIR.fullmatch(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid, start = int(match.group(1)), match.group(2)
        if process_start(pid) == start:
            continue  # its owner still runs (a pid reused by another process has another start time)
        remove_sandbox_dir(entry)
        if not entry.exists():
            removed.append(entry)
    return removed


def _hand_over(root: Path, uid: int, gid: int) -> None:
    """Give the sandbox tree to the unprivileged uid so a dropped-root program can build in it."""
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _check_reachable(root: Path) -> None:
    for parent in root.resolve().parents:
        if not os.stat(parent).st_mode & 0o001:
            raise SandboxError(
                f"the sandbox directory {root} lies under {parent}, which the unprivileged sandbox user cannot "
                "enter; create it with make_sandbox_dir()"
            )


def _minimal_env(root: Path, extra: dict[str, str] | None, plan: IsolationPlan) -> dict[str, str]:
    env = {
        "PATH": SAFE_PATH,
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        # Plain ASCII, English diagnostics: the parsers depend on them.
        "LC_ALL": "C",
        "LANG": "C",
    }
    (root / "home").mkdir(exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    if extra:
        env.update(extra)
    if plan.preload_shim:
        env["LD_PRELOAD"] = plan.preload_shim
    return env


class _Capture:
    """Reads one stream incrementally, keeping at most `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.overflowed = False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.overflowed = True
            chunk = chunk[: max(room, 0)]
        self.data += chunk

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _launch(
    argv: list[str], cwd: Path, root: Path, limits: Limits, env: dict[str, str], stdin: bytes | None,
    plan: IsolationPlan, readonly_paths: tuple[str, ...] = (),
) -> RunResult:
    cfg = {
        "namespaces": plan.namespaces,
        "private_root": True,
        "parent_pid": os.getpid(),
        "readonly_paths": [*READONLY_PATHS, *readonly_paths],
        "drop_uid": plan.drop_uid,
        "drop_gid": UNPRIVILEGED_GID if plan.drop_uid is not None else None,
        "writable_dir": str(root.resolve()),
        "cwd": str(cwd.resolve()),
        "env": env,
        "cpu_seconds": limits.cpu_seconds,
        "max_file_bytes": limits.max_file_bytes,
        "max_processes": limits.max_processes + LAUNCHER_PROCESSES,
        "memory_bytes": limits.memory_mb * 1024 * 1024,
    }
    status_r, status_w = os.pipe()
    stdin_file = tempfile.TemporaryFile()
    if stdin:
        stdin_file.write(stdin)
        stdin_file.seek(0)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(LAUNCHER), str(status_w), json.dumps(cfg), "--", *argv],
            stdin=stdin_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(status_w,), cwd=str(cwd), env={"PATH": SAFE_PATH, "LC_ALL": "C"},
            start_new_session=True,
        )
    except OSError as exc:
        os.close(status_r)
        raise SandboxError(f"cannot start the sandbox launcher: {exc}") from exc
    finally:
        os.close(status_w)
        stdin_file.close()

    out, err = _Capture(limits.max_output_bytes), _Capture(limits.max_output_bytes)
    status = bytearray()
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout.fileno(), selectors.EVENT_READ, out)
    sel.register(proc.stderr.fileno(), selectors.EVENT_READ, err)
    sel.register(status_r, selectors.EVENT_READ, status)
    deadline = started + limits.wall_seconds
    killed_reason: str | None = None
    open_fds = 3
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            killed_reason = "timeout"
            break
        for key, _ in sel.select(timeout=min(remaining, 0.5)):
            chunk = os.read(key.fd, _READ_CHUNK)
            if not chunk:
                sel.unregister(key.fd)
                open_fds -= 1
                continue
            if isinstance(key.data, _Capture):
                key.data.feed(chunk)
                if key.data.overflowed:
                    killed_reason = "output_limit"
            else:
                key.data.extend(chunk)
        if killed_reason:
            break
    if killed_reason:
        _kill_tree(proc)
        # Whatever status the launcher managed to write before dying is still useful (layers).
        status += _drain(status_r)
    sel.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        proc.wait()
    os.close(status_r)
    proc.stdout.close()
    proc.stderr.close()
    wall = time.monotonic() - started
    return _result(status.decode(errors="replace"), out, err, killed_reason, wall)


def _drain(fd: int) -> bytes:
    os.set_blocking(fd, False)
    data = bytearray()
    try:
        while chunk := os.read(fd, _READ_CHUNK):
            data += chunk
    except BlockingIOError:
        pass
    return bytes(data)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    # The launcher leads its own session/process group; with a pid namespace, killing its init kills the rest.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_SIGNAL_REASONS: dict[int, str] = {signal.SIGXCPU: "cpu_limit", signal.SIGXFSZ: "file_size_limit"}


def _result(status: str, out: _Capture, err: _Capture, killed_reason: str | None, wall: float) -> RunResult:
    layers: list[str] = []
    returncode: int | None = None
    setup_error: str | None = None
    for line in status.splitlines():
        kind, _, rest = line.partition(" ")
        key, _, value = rest.partition("=")
        if kind == "layer":
            layers.append(key if value == "yes" else f"{key}={value}")
        elif kind == "exit" and key == "code":
            returncode = int(value)
        elif kind == "exit" and key == "signal":
            returncode = -int(value)
            if killed_reason is None:
                killed_reason = _SIGNAL_REASONS.get(int(value), f"signal:{int(value)}")
        elif kind == "error":
            setup_error = value
    if setup_error is not None:
        raise SandboxError(setup_error)
    stderr = err.text()
    return RunResult(
        returncode=returncode, stdout=out.text(), stderr=stderr, truncated=out.overflowed or err.overflowed,
        timed_out=killed_reason == "timeout", killed_reason=killed_reason, wall_s=round(wall, 4),
        isolation=" ".join(layers),
    )


@functools.cache
def isolation_plan() -> IsolationPlan:
    """Probe once which isolation this host allows; build the socket shim only when namespaces fail. The first
    sandbox use of a process also reclaims what dead processes leaked in the temp dir."""
    reclaim_leaked_sandbox_dirs()
    drop = _drop_uid()
    probe_root = make_sandbox_dir("cra-probe-")
    try:
        trial = IsolationPlan(namespaces=True, drop_uid=drop, preload_shim=None, description="")
        env = _minimal_env(probe_root, None, trial)
        if drop is not None:
            _hand_over(probe_root, drop, UNPRIVILEGED_GID)
        probe = _launch(["true"], probe_root, probe_root, Limits(wall_seconds=10), env, None, trial)
    finally:
        remove_sandbox_dir(probe_root)
    layers = probe.isolation.split()
    netns = "netns" in layers
    shim = None if netns else str(build_socket_shim())
    parts = [*layers] + ([] if netns else ["network=ld_preload_shim"])
    return IsolationPlan(namespaces=True, drop_uid=drop, preload_shim=shim, description=" ".join(parts))


def run_sandboxed(
    argv: list[str], cwd: str | Path, limits: Limits, env: dict[str, str] | None = None,
    stdin: bytes | str | None = None, *, sandbox_root: str | Path | None = None, plan: IsolationPlan | None = None,
    readonly_paths: list[str] | tuple[str, ...] = (),
) -> RunResult:
    """Run argv inside the sandbox directory `sandbox_root` (default: cwd), the only place it may write.

    env entries are added to a minimal environment (PATH, HOME and TMPDIR inside the sandbox, LC_ALL=C).
    readonly_paths: absolute host paths the program may read besides READONLY_PATHS (e.g. a trusted project's
    include directories outside the workspace); nothing else of the host is visible.
    Raises SandboxError when the sandbox itself cannot be set up; the program's own failures are in the result.
    """
    if not argv or not all(isinstance(a, str) and a for a in argv):
        raise SandboxError(f"a sandboxed command needs a non-empty list of non-empty strings, got {argv!r}")
    cwd_path = Path(cwd)
    if not cwd_path.is_dir():
        raise SandboxError(f"sandbox working directory {cwd_path} does not exist")
    root = Path(sandbox_root) if sandbox_root is not None else cwd_path
    if not cwd_path.resolve().is_relative_to(root.resolve()):
        raise SandboxError(f"sandbox working directory {cwd_path} is outside the sandbox directory {root}")
    active = plan or isolation_plan()
    full_env = _minimal_env(root, env, active)
    if active.drop_uid is not None:
        _check_reachable(root)
        _hand_over(root, active.drop_uid, UNPRIVILEGED_GID)
    extra = []
    for path in readonly_paths:
        if not os.path.isabs(path):
            raise SandboxError(f"a read-only sandbox path must be absolute, got {path!r}")
        extra.append(os.path.realpath(path))
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return _launch(list(argv), cwd_path, root, limits, full_env, data, active, tuple(extra))
