"""Git facts for the context package: the tracked/unignored file list and co-change counts from history."""

from __future__ import annotations

import os
import subprocess
from collections import Counter, defaultdict

import msgspec

_GIT_TIMEOUT_S = 30


def _git(root: str, *args: str) -> str | None:
    """Run git in `root`; None when git is missing, `root` is no repository, or the command fails."""
    try:
        done = subprocess.run(
            ["git", "-C", root, *args],
            capture_output=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def is_repository(root: str) -> bool:
    return _git(root, "rev-parse", "--is-inside-work-tree") is not None


def listed_files(root: str) -> list[str] | None:
    """Tracked plus untracked-but-not-ignored files, relative to `root` (None outside a git work tree)."""
    out = _git(root, "ls-files", "-co", "--exclude-standard", "-z")
    if out is None:
        return None
    return [p for p in out.split("\0") if p]


def head(root: str) -> str | None:
    out = _git(root, "rev-parse", "HEAD")
    return out.strip() if out else None


class CoChange(msgspec.Struct):
    head: str
    # file -> {other file -> number of commits touching both}
    pairs: dict[str, dict[str, int]]
    commits: dict[str, int]  # file -> number of commits touching it


def _prefix(root: str) -> str:
    """`root` relative to the repository top (git log prints top-relative paths)."""
    out = _git(root, "rev-parse", "--show-prefix")
    return (out or "").strip()


def cochange(root: str, cache_dir: str | None, *, max_commits: int = 2000, max_files_per_commit: int = 50) -> CoChange:
    """Files changed together, from `git log --name-only`; cached per HEAD because history only grows there.

    Commits touching more than `max_files_per_commit` files (mass renames, reformatting) say nothing about coupling
    and are left out.
    """
    current = head(root)
    if current is None:
        return CoChange(head="", pairs={}, commits={})
    cache_path = os.path.join(cache_dir, f"cochange-{current}.msgpack") if cache_dir else None
    if cache_path and os.path.exists(cache_path):
        try:
            with open(cache_path, "rb") as handle:
                return msgspec.msgpack.decode(handle.read(), type=CoChange)
        except (OSError, msgspec.DecodeError):
            pass  # a damaged cache entry is rebuilt below
    log = _git(root, "log", f"-n{max_commits}", "--name-only", "--format=%x00") or ""
    prefix = _prefix(root)
    pairs: dict[str, Counter[str]] = defaultdict(Counter)
    commits: Counter[str] = Counter()
    for block in log.split("\0"):
        files = [line.strip() for line in block.splitlines() if line.strip()]
        files = [f[len(prefix) :] for f in files if f.startswith(prefix)]
        if not files or len(files) > max_files_per_commit:
            continue
        unique = sorted(set(files))
        for name in unique:
            commits[name] += 1
            for other in unique:
                if other != name:
                    pairs[name][other] += 1
    result = CoChange(head=current, pairs={f: dict(c) for f, c in pairs.items()}, commits=dict(commits))
    if cache_path:
        try:
            os.makedirs(cache_dir or ".", exist_ok=True)
            with open(cache_path, "wb") as handle:
                handle.write(msgspec.msgpack.encode(result))
        except OSError:
            pass  # a read-only workspace still works, only slower
    return result
