"""Which files of a workspace get indexed: C/H sources, .gitignore honoured, binaries and huge files skipped."""

from __future__ import annotations

import fnmatch
import os

from cra.pipeline.config import ContextConfig
from cra.pipeline.context import gitinfo
from cra.pipeline.context.symbols import SkippedFile

SOURCE_SUFFIXES = (".c", ".h")
DEFAULT_MAX_FILE_BYTES = ContextConfig().max_file_bytes  # one default for the CLI, the server and the pipeline
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".cra", ".hg", ".svn", "node_modules", "__pycache__", ".venv"})


def skipped_dir(name: str) -> bool:
    """A folder never indexed: VCS and tool folders, and every hidden one. Hidden folders hold no part of a build
    but may hold copies of it: quilt's `.pc/` keeps each patched file as it was (a Debian source package has
    three `http_parser.c`), which the index would offer as context beside the real one."""
    return name in ALWAYS_SKIPPED_DIRS or name.startswith(".")
_BINARY_SNIFF_BYTES = 8192


class _IgnoreRules:
    """A simple .gitignore matcher for workspaces that are not git repositories (no git to ask)."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, str, bool, bool]] = []  # (base dir, pattern, negated, directory only)

    def load(self, directory: str, rel_dir: str) -> None:
        path = os.path.join(directory, ".gitignore")
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            line = line.lstrip("!")
            dir_only = line.endswith("/")
            self.rules.append((rel_dir, line.strip("/") if "/" in line.rstrip("/") else line.rstrip("/"), negated, dir_only))

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        result = False
        for base, pattern, negated, dir_only in self.rules:
            if dir_only and not is_dir:
                continue
            if base and not rel_path.startswith(base + "/"):
                continue
            local = rel_path[len(base) + 1 :] if base else rel_path
            if "/" in pattern:
                hit = fnmatch.fnmatchcase(local, pattern)
            else:
                hit = fnmatch.fnmatchcase(local.rsplit("/", 1)[-1], pattern)
            if hit:
                result = not negated
        return result


def _walk(root: str) -> list[str]:
    """All files under root; directory symlinks are followed once (a symlink loop is visited only once)."""
    rules = _IgnoreRules()
    seen_dirs: set[str] = set()
    found: list[str] = []
    stack = [("", root)]
    while stack:
        rel_dir, directory = stack.pop()
        real = os.path.realpath(directory)
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        rules.load(directory, rel_dir)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                continue
            if is_dir:
                if not skipped_dir(entry.name) and not rules.ignored(rel, True):
                    stack.append((rel, entry.path))
            elif not rules.ignored(rel, False):
                found.append(rel)
    return found


def _listed(root: str, depth: int) -> list[str]:
    listed = gitinfo.listed_files(root)
    if listed is None:
        return _walk(root)
    paths: list[str] = []
    for rel in listed:
        full = os.path.join(root, rel)
        # A submodule shows up as one gitlink entry: list its own files (depth-limited against odd setups).
        if os.path.isdir(full) and not os.path.islink(full):
            if depth < 4:
                paths.extend(f"{rel}/{inner}" for inner in _listed(full, depth + 1))
        else:
            paths.append(rel)
    return paths


def candidate_paths(root: str) -> list[str]:
    """Workspace-relative C/H paths: `git ls-files -co --exclude-standard` in a repository, else a walk."""
    paths = _listed(root, depth=0)
    chosen = [
        p
        for p in paths
        if p.endswith(SOURCE_SUFFIXES) and not any(skipped_dir(part) for part in p.split("/")[:-1])
    ]
    return sorted(set(chosen))


def read_source(root: str, rel: str, max_file_bytes: int) -> tuple[bytes | None, SkippedFile | None]:
    """The file's bytes, or why it is not indexed (too large, binary, unreadable, not a regular file)."""
    path = os.path.join(root, rel)
    try:
        if not os.path.isfile(path):
            return None, SkippedFile(rel, "not a regular file (directory, broken symlink or device)")
        size = os.path.getsize(path)
        if size > max_file_bytes:
            return None, SkippedFile(rel, f"larger than the {max_file_bytes}-byte limit ({size} bytes)")
        with open(path, "rb") as handle:
            data = handle.read(max_file_bytes + 1)
    except OSError as error:
        return None, SkippedFile(rel, f"unreadable: {error.strerror or error}")
    if len(data) > max_file_bytes:
        return None, SkippedFile(rel, f"larger than the {max_file_bytes}-byte limit")
    if b"\0" in data[:_BINARY_SNIFF_BYTES]:
        return None, SkippedFile(rel, "binary content (NUL bytes)")
    return data, None
