"""Compile flags for one file: from compile_commands.json when the project has one, else defaults."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import msgspec

from cra.pipeline.sandbox.limits import SandboxError
from cra.pipeline.sandbox.project_std import project_c_standard, with_c_standard

DEFAULT_FLAGS: tuple[str, ...] = ("-std=c11", "-Wall", "-Wextra")  # -std: the project's own when it names one
_C_SUFFIXES = frozenset({".c", ".h"})
COMPILE_COMMANDS_DIRS = (".", "build", "out", "cmake-build-debug", "cmake-build-release")
# Flags that take the next argument as a path, which may be relative to the entry's directory.
_PATH_ARG_FLAGS = ("-I", "-isystem", "-iquote", "-idirafter", "-include", "-imacros", "-L")
# Output/dependency-file options: meaningless (or harmful) when we compile for diagnostics only.
_DROP_WITH_ARG = frozenset({"-o", "-MF", "-MT", "-MQ"})
_DROP_ALONE = frozenset({"-c", "-MD", "-MMD", "-M", "-MM", "-MP", "-E", "-S"})


# -- untrusted workspaces ------------------------------------------------------------------------------------------
# A workspace's cra.toml or compile_commands.json may name flags that make gcc run other programs (-wrapper, -B,
# -specs, -fplugin, @file, ...). Untrusted, only flags on this allow-list are kept, and the compiler is the default.
DEFAULT_COMPILER = "gcc"
DEFAULT_CXX_COMPILER = "g++"
_PATH_FLAGS = ("-I", "-iquote", "-isystem", "-idirafter", "-include", "-imacros", "-L")  # path must be inside
_NAME_FLAGS = ("-D", "-U")  # -DNAME[=VALUE], -UNAME: joined or as two arguments
# Known to take the next argument as their value: dropped together with it.
_DROP_PAIRED = frozenset({
    "-wrapper", "-B", "-specs", "-x", "-o", "-Xlinker", "-Xassembler", "-Xpreprocessor", "-iprefix",
    "-iwithprefix", "-iwithprefixbefore", "-isysroot", "--sysroot", "-MF", "-MT", "-MQ", "-T", "-u", "-e", "-z",
    "-aux-info", "-dumpbase", "-dumpdir", "-l", "--param", "-Xclang",
})
_SAFE_ALONE = frozenset({"-ansi", "-pedantic", "-pedantic-errors", "-w", "-pthread", "-nostdinc", "-fsyntax-only"})
# -f options that load code, choose a tool, or read/write files named by the workspace.
_UNSAFE_F = ("plugin", "profile", "auto-profile", "dump", "use-ld", "ld-path", "lto", "record", "callgraph-info",
             "opt-info", "save-optimization-record", "stack-usage", "coverage", "test-coverage",
             "branch-probabilities", "debug-prefix-map", "file-prefix-map", "macro-prefix-map", "profile-prefix-map",
             "self-test", "compare-debug", "dbg-cnt", "spec", "diagnostics-plain-output-file", "dump-")
_F_OPTION = re.compile(r"-f(?:no-)?([a-z0-9][a-z0-9_+-]*)(?:=[A-Za-z0-9_.,:+-]*)?")
_SIMPLE_VALUE = re.compile(r"[A-Za-z0-9_.,:=+-]*")
_LIB_NAME = re.compile(r"-l[A-Za-z0-9_.+-]+")


class UntrustedBuild(msgspec.Struct, frozen=True):
    """What an untrusted workspace may build with: the default compiler and the allowed flags; `dropped` lists
    what was refused (for messages and tests)."""

    compiler: str
    flags: list[str]
    dropped: list[str] = []


def outside_paths(flags: Sequence[str], root: str | Path) -> list[str]:
    """Absolute directories and files the flags name outside `root` (include/library paths): a trusted build
    reads them, so the sandbox must show them read-only."""
    root_p = Path(root).resolve()
    found: list[str] = []
    for i, arg in enumerate(flags):
        if arg in _PATH_FLAGS:
            value = flags[i + 1] if i + 1 < len(flags) else ""
        else:
            joined = next((f for f in _PATH_FLAGS if arg.startswith(f) and len(arg) > len(f)), None)
            value = arg[len(joined):] if joined else ""
        if value.startswith("/") and Path(value).exists() and not _inside(value, root_p) and value not in found:
            found.append(value)
    return found


def _inside(path: str, root: Path) -> bool:
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else root / candidate).resolve()
    return full.is_relative_to(root)


def _safe_flag(flag: str) -> bool:
    if flag in _SAFE_ALONE:
        return True
    if flag.startswith("-std=") or flag.startswith("-O") or flag.startswith("-g"):
        return _SIMPLE_VALUE.fullmatch(flag[1:]) is not None
    if flag.startswith("-W"):
        # -Wl, -Wa, -Wp, hand options to the linker, assembler and preprocessor: a path to a plugin among them.
        return not flag.startswith(("-Wl,", "-Wa,", "-Wp,")) and _SIMPLE_VALUE.fullmatch(flag[1:]) is not None
    if flag.startswith("-m"):
        return _SIMPLE_VALUE.fullmatch(flag[1:]) is not None
    if flag.startswith("-f"):
        match = _F_OPTION.fullmatch(flag)
        return match is not None and not match.group(1).startswith(_UNSAFE_F)
    return _LIB_NAME.fullmatch(flag) is not None


def restrict_untrusted(compiler: str, flags: Sequence[str], root: str | Path, *, trusted: bool) -> UntrustedBuild:
    """For an untrusted workspace: the default compiler (g++ when `compiler` names a C++ one, else gcc) and only
    the flags that cannot make the build run a program or read outside `root` (include/library paths inside the
    workspace, -D/-U, -std=, -W*, -O*, -g*, -m*, safe -f*, -l<name>). Everything else (-wrapper, -B, -specs,
    --sysroot, -fplugin, @file, -o, -x, positional arguments, ...) is dropped. Trusted: unchanged."""
    if trusted:
        return UntrustedBuild(compiler=compiler, flags=list(flags))
    root_p = Path(root).resolve()
    kept: list[str] = []
    dropped: list[str] = []
    args = list(flags)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _PATH_FLAGS or arg in _NAME_FLAGS:
            value = args[i + 1] if i + 1 < len(args) else None
            # -D/-U only define macros: any value is harmless.
            ok = value is not None and (arg in _NAME_FLAGS or _inside(value, root_p))
            (kept if ok else dropped).extend([arg, value] if value is not None else [arg])
            i += 2
            continue
        if arg in _DROP_PAIRED:
            dropped.extend(args[i:i + 2])
            i += 2
            continue
        joined_path = next((f for f in _PATH_FLAGS if arg.startswith(f) and len(arg) > len(f)), None)
        joined_name = next((f for f in _NAME_FLAGS if arg.startswith(f) and len(arg) > len(f)), None)
        if joined_path is not None:
            ok = _inside(arg[len(joined_path):], root_p)
        elif joined_name is not None:
            ok = True
        else:
            ok = _safe_flag(arg)
        (kept if ok else dropped).append(arg)
        i += 1
    name = Path(compiler).name
    default = DEFAULT_CXX_COMPILER if name.endswith("++") else DEFAULT_COMPILER
    if compiler != default:
        dropped.insert(0, f"compiler={compiler}")
    return UntrustedBuild(compiler=default, flags=kept, dropped=dropped)


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


def flags_for(root: str | Path, path: str | Path, defaults: list[str] | tuple[str, ...] = DEFAULT_FLAGS, *,
              trusted: bool = False) -> CompileFlags:
    """compile_commands.json flags when it covers the file, else `defaults` (C: with the `-std=` the project's
    build files name, see `project_std`) plus include dirs for the project.

    Not `trusted` (the default): only the flags `restrict_untrusted` allows are kept, from either source."""
    compile_flags = _flags_for(root, path, defaults)
    if trusted:
        return compile_flags
    safe = restrict_untrusted(DEFAULT_COMPILER, compile_flags.flags, root, trusted=False)
    return msgspec.structs.replace(compile_flags, flags=safe.flags)


def _flags_for(root: str | Path, path: str | Path, defaults: list[str] | tuple[str, ...]) -> CompileFlags:
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
    chosen = list(defaults)
    if Path(path).suffix in _C_SUFFIXES:  # a C++ unit keeps its own -std
        chosen = with_c_standard(chosen, project_c_standard(root_p))
    return CompileFlags(flags=chosen + [f"-I{d}" for d in seen], source="default")


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
