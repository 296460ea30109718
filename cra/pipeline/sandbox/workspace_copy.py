"""Copy a project into a sandbox directory: sources and build files only, with edited files replaced."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cra.pipeline.sandbox.limits import SandboxError

SKIPPED_DIRS = frozenset({".git", ".cra", ".hg", ".svn", ".venv", "venv", "node_modules", "__pycache__", ".cache"})
# Build outputs are never needed to rebuild; copying them only risks stale objects and wasted disk.
SKIPPED_SUFFIXES = frozenset({".o", ".obj", ".a", ".so", ".dylib", ".dll", ".exe", ".gch", ".pch", ".gcda", ".gcno"})
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Test data can be large (fribidi's Unicode conformance file is 7.9 MB, and its meson build fails without it); the
# whole copy stays within DEFAULT_MAX_BYTES.
DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024


class WorkspaceTooLarge(SandboxError):
    """The project's sources exceed the copy budget."""


class PathOutsideWorkspace(SandboxError):
    """An edited path does not lie inside the workspace."""


def relative_inside(root: Path, path: str | Path) -> Path:
    """Workspace-relative form of `path` (absolute or relative); refuses anything that escapes the root."""
    root = root.resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not full.is_relative_to(root):
        raise PathOutsideWorkspace(f"{path} is outside the workspace {root}")
    rel = full.relative_to(root)
    if str(rel) == ".":
        raise PathOutsideWorkspace(f"{path} names the workspace itself, not a file in it")
    return rel


def copy_workspace(
    root: str | Path, dest: str | Path, *, changed: dict[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> list[str]:
    """Copy `root` into `dest` (created if needed) and write each `changed` file (path -> new text) there.

    Skips VCS and tool folders, object files/libraries, files over `max_file_bytes`, and symlinks that point
    outside the workspace. Returns the copied workspace-relative paths (sorted). Raises WorkspaceTooLarge when
    the total passes `max_bytes`, PathOutsideWorkspace for an edited path outside `root`.
    """
    src_root = Path(root).resolve()
    if not src_root.is_dir():
        raise SandboxError(f"workspace {root} is not a directory")
    out_root = Path(dest)
    out_root.mkdir(parents=True, exist_ok=True)
    edits = {relative_inside(src_root, p): text for p, text in (changed or {}).items()}
    copied: list[str] = []
    skip = {rel.as_posix() for rel in edits}
    for rel_name, source in workspace_files(src_root, max_bytes=max_bytes, max_file_bytes=max_file_bytes,
                                            exclude=skip).items():
        target = out_root / rel_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        copied.append(rel_name)
    for rel, text in edits.items():
        target = out_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        copied.append(rel.as_posix())
    return sorted(copied)


def workspace_files(root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                    exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Path]:
    """What a sandbox copy of `root` holds (workspace-relative path -> file, sorted): no VCS or tool folders, no
    object files or libraries, no file over `max_file_bytes`, no symlink out of the workspace; `exclude` paths are
    left out of the walk and of the total. Raises WorkspaceTooLarge when the total passes `max_bytes`."""
    found: dict[str, Path] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not _links_outside(root, dirpath, d))
        for name in sorted(filenames):
            source = Path(dirpath) / name
            rel = source.relative_to(root).as_posix()
            if rel in exclude or source.suffix in SKIPPED_SUFFIXES or _links_outside(root, dirpath, name):
                continue
            try:
                size = source.stat().st_size
            except OSError:
                continue  # dangling symlink or a file removed while we walk
            if size > max_file_bytes or not source.is_file():
                continue
            total += size
            if total > max_bytes:
                raise WorkspaceTooLarge(
                    f"the workspace {root} holds more than {max_bytes} bytes of sources; "
                    "raise the sandbox copy limit or exclude build folders"
                )
            found[rel] = source
    return found


def _links_outside(root: Path, dirpath: str, name: str) -> bool:
    path = Path(dirpath) / name
    return path.is_symlink() and not path.resolve().is_relative_to(root)
