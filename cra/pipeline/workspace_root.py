"""The workspace a file belongs to: the nearest folder above it that holds a project marker (a build file, a cra.toml,
a compile_commands.json, a git checkout). Light to import: the headless client needs it before anything else."""

from __future__ import annotations

from pathlib import Path

ROOT_MARKERS = ("cra.toml", "compile_commands.json", ".git", "Makefile", "CMakeLists.txt", "meson.build", "configure.ac",
                "configure")


def find_root(path: str | Path) -> Path:
    start = Path(path).resolve()
    start = start if start.is_dir() else start.parent
    for directory in (start, *start.parents):
        if any((directory / marker).exists() for marker in ROOT_MARKERS):
            return directory
    return start
