"""A persistent sandbox copy per workspace, so a trusted project build is incremental between runs.

The copy is synced with the workspace (plus the edited files) before each run: a file whose content is unchanged
keeps its mtime, so make/ninja do not rebuild it; a changed one is rewritten and gets a fresh mtime; a file gone
from the tree is removed. Build outputs the project's build wrote stay. A lock file guards the copy: when another
job holds it, the caller gets None and uses a throwaway copy instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cra.pipeline.sandbox.limits import SandboxError
from cra.pipeline.sandbox.workspace_copy import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    relative_inside,
    workspace_files,
)

MANIFEST = ".cra-synced.json"  # the files the last sync wrote from the workspace (not build outputs)
CACHE_ENV = "CRA_BUILD_CACHE"  # overrides where the persistent copies live
# A copy no job has used for this long is removed when another job takes its own (build dirs are large).
STALE_SECONDS = 14 * 24 * 3600


def _reachable(path: Path) -> bool:
    """Every folder above `path` lets others through: the unprivileged sandbox user must reach the copy."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [probe, *probe.parents])


def cache_base() -> Path:
    """$CRA_BUILD_CACHE, else the user cache dir when the sandbox user can reach it, else the temp dir."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cra" / "builds"
    if _reachable(user):
        return user
    return Path(tempfile.gettempdir()) / f"cra-builds-{os.geteuid()}"


def build_dir_for(root: str | Path) -> Path:
    """The persistent sandbox directory of a workspace (keyed by its resolved path)."""
    resolved = str(Path(root).resolve())
    key = hashlib.sha256(resolved.encode()).hexdigest()[:16]
    return cache_base() / f"{Path(resolved).name or 'root'}-{key}"


@contextlib.contextmanager
def locked_build_dir(root: str | Path) -> Iterator[Path | None]:
    """The workspace's persistent sandbox dir, locked for this job; None when another job holds it."""
    path = build_dir_for(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o711)
        lock = open(path.parent / f"{path.name}.lock", "w")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        raise SandboxError(f"cannot create the build cache {path.parent}: {exc}") from exc
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        try:
            os.utime(lock.fileno())  # the lock's mtime says when the copy was last used
            prune_stale(path.parent, keep=path)
            path.mkdir(exist_ok=True)
            for sub in ("home", "tmp"):
                (path / sub).mkdir(exist_ok=True)
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def prune_stale(base: Path, *, keep: Path | None = None, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove the copies in `base` unused for `max_age` seconds (and not locked by a running job)."""
    removed: list[Path] = []
    now = time.time()
    for lock_path in base.glob("*.lock"):
        copy = lock_path.with_suffix("")
        try:
            if copy == keep or now - lock_path.stat().st_mtime < max_age:
                continue
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(copy, ignore_errors=True)
                lock_path.unlink(missing_ok=True)
        except (BlockingIOError, OSError):
            continue  # in use, or already gone
        removed.append(copy)
    return removed


def _write_if_different(target: Path, data: bytes) -> bool:
    try:
        if target.is_file() and not target.is_symlink() and target.read_bytes() == data:
            return False
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.is_dir():
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    target.write_bytes(data)
    return True


def _keep_executable(source: Path, target: Path) -> None:
    """configure, autogen.sh and test scripts must stay runnable in the copy."""
    with contextlib.suppress(OSError):
        wanted = 0o755 if source.stat().st_mode & stat.S_IXUSR else 0o644
        if target.stat().st_mode & 0o777 != wanted:
            os.chmod(target, wanted)


def sync_tree(root: str | Path, dest: Path, changed: dict[str, str] | None = None, *,
              max_bytes: int = DEFAULT_MAX_BYTES, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> list[str]:
    """Make `dest` hold the workspace with `changed` applied, touching only what differs. Returns the
    workspace-relative paths rewritten (fresh mtimes)."""
    src = Path(root).resolve()
    if not src.is_dir():
        raise SandboxError(f"workspace {root} is not a directory")
    edits = {relative_inside(src, p).as_posix(): text.encode() for p, text in (changed or {}).items()}
    wanted = workspace_files(src, max_bytes=max_bytes, max_file_bytes=max_file_bytes)
    manifest_path = dest / MANIFEST
    try:
        previous = set(json.loads(manifest_path.read_text()))
    except (OSError, ValueError):
        previous = set()
    written = []
    for rel, source in sorted(wanted.items()):
        if rel in edits:
            continue
        try:
            data = source.read_bytes()
        except OSError:
            continue
        if _write_if_different(dest / rel, data):
            written.append(rel)
        _keep_executable(source, dest / rel)
    for rel, data in edits.items():
        if _write_if_different(dest / rel, data):
            written.append(rel)
    current = set(wanted) | set(edits)
    for rel in sorted(previous - current):
        with contextlib.suppress(OSError):
            (dest / rel).unlink()
    manifest_path.write_text(json.dumps(sorted(current)))
    return sorted(written)
