"""Compile flags for one file: from compile_commands.json when the project has one, else defaults."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import msgspec

from cra.pipeline.sandbox.limits import SandboxError

DEFAULT_FLAGS: tuple[str, ...] = ("-std=c11", "-Wall", "-Wextra")
COMPILE_COMMANDS_DIRS = (".", "build", "out", "cmake-build-debug", "cmake-build-release")
# Flags that take the next argument as a path, which may be relative to the entry's directory.
_PATH_ARG_FLAGS = ("-I", "-isystem", "-iquote", "-idirafter", "-include", "-imacros", "-L")
# Output/dependency-file options: meaningless (or harmful) when we compile for diagnostics only.
_DROP_WITH_ARG = frozenset({"-o", "-MF", "-MT", "-MQ"})
_DROP_ALONE = frozenset({"-c", "-MD", "-MMD", "-M", "-MM", "-MP", "-E", "-S"})


class CompileCommandsError(SandboxError):
    """compile_commands.json exists but cannot be used."""


class CompileFlags(msgspec.Struct, frozen=True):
    flags: list[str]
    source: str  # "compile_commands" | "default"
    database: str | None = None  # workspace-relative path of the compile_commands.json used


def find_compile_commands(root: Path) -> Path | None:
    for sub in COMPILE_COMMANDS_DIRS:
        candidate = root / sub / "compile_commands.json"
        if candidate.is_file():
            return candidate
    return None


def _entry_argv(entry: dict, db: Path) -> list[str]:
    if isinstance(entry.get("arguments"), list):
        return [str(a) for a in entry["arguments"]]
    if isinstance(entry.get("command"), str):
        try:
            return shlex.split(entry["command"])
        except ValueError as exc:
            raise CompileCommandsError(f"{db}: cannot split command {entry['command']!r}: {exc}") from exc
    raise CompileCommandsError(f"{db}: entry for {entry.get('file')!r} has neither 'arguments' nor 'command'")


def _absolute(path: str, directory: Path) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else (directory / p).resolve())


def clean_arguments(argv: list[str], directory: Path, source: Path) -> list[str]:
    """Drop the compiler, outputs and the source itself; make path arguments absolute."""
    out: list[str] = []
    args = argv[1:]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _DROP_WITH_ARG:
            i += 2
            continue
        if arg in _DROP_ALONE or (arg.startswith("-o") and len(arg) > 2 and not arg.startswith("-O")):
            i += 1
            continue
        if arg in _PATH_ARG_FLAGS and i + 1 < len(args):
            out += [arg, _absolute(args[i + 1], directory)]
            i += 2
            continue
        joined = next((f for f in ("-I", "-L") if arg.startswith(f) and len(arg) > 2), None)
        if joined:
            out.append(joined + _absolute(arg[2:], directory))
        elif not arg.startswith("-") and Path(_absolute(arg, directory)) == source:
            pass  # the file being compiled; the caller adds it back
        else:
            out.append(arg)
        i += 1
    return out


def flags_from_compile_commands(root: str | Path, path: str | Path) -> CompileFlags | None:
    """Flags recorded for `path` (workspace-relative or absolute), or None when no entry covers it."""
    root_p = Path(root).resolve()
    db = find_compile_commands(root_p)
    if db is None:
        return None
    try:
        entries = json.loads(db.read_text())
    except (OSError, ValueError) as exc:
        raise CompileCommandsError(f"{db}: not valid JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise CompileCommandsError(f"{db}: expected a JSON list of entries")
    target = (Path(path) if Path(path).is_absolute() else root_p / path).resolve()
    for entry in entries:
        if not isinstance(entry, dict) or "file" not in entry:
            continue
        directory = Path(entry.get("directory") or db.parent)
        if not directory.is_absolute():
            directory = (db.parent / directory).resolve()
        if Path(_absolute(str(entry["file"]), directory)) != target:
            continue
        flags = clean_arguments(_entry_argv(entry, db), directory, target)
        return CompileFlags(flags=flags, source="compile_commands", database=db.relative_to(root_p).as_posix())
    return None


def flags_for(root: str | Path, path: str | Path, defaults: list[str] | tuple[str, ...] = DEFAULT_FLAGS) -> CompileFlags:
    """compile_commands.json flags when it covers the file, else `defaults` plus include dirs for the project."""
    recorded = flags_from_compile_commands(root, path)
    if recorded is not None:
        return recorded
    root_p = Path(root).resolve()
    file_dir = ((Path(path) if Path(path).is_absolute() else root_p / path).resolve()).parent
    includes = [file_dir, root_p] + [root_p / d for d in ("include", "src", "inc") if (root_p / d).is_dir()]
    seen: list[str] = []
    for inc in includes:
        if str(inc) not in seen:
            seen.append(str(inc))
    return CompileFlags(flags=list(defaults) + [f"-I{d}" for d in seen], source="default")


def rebase_flags(flags: list[str], workspace_root: Path, sandbox_root: Path) -> list[str]:
    """Point absolute paths into the workspace at the sandbox copy, so nothing reads the user's tree."""
    src = str(workspace_root.resolve()).rstrip("/")
    dst = str(sandbox_root).rstrip("/")
    out = []
    for flag in flags:
        idx = flag.find(src)
        if idx >= 0 and (len(flag) == idx + len(src) or flag[idx + len(src)] == "/"):
            flag = flag[:idx] + dst + flag[idx + len(src):]
        out.append(flag)
    return out
