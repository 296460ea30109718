"""Parse gcc/clang (and GNU ld) diagnostics into structured records with workspace-relative paths."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import msgspec


class Diagnostic(msgspec.Struct, frozen=True):
    """One compiler or linker message. line/col are 1-based; None when the tool gave none (linker)."""

    file: str
    line: int | None
    col: int | None
    severity: str  # "error" | "warning" | "note"
    message: str
    flag: str | None = None

    def render(self) -> str:
        where = self.file + "".join(f":{n}" for n in (self.line, self.col) if n is not None)
        return f"{where}: {self.severity}: {self.message}" + (f" [{self.flag}]" if self.flag else "")


_COMPILER = re.compile(
    r"^(?P<file>[^:\n]+?):(?P<line>\d+)(?::(?P<col>\d+))?: "
    r"(?P<sev>fatal error|error|warning|note): (?P<msg>.*?)(?: \[(?P<flag>-[A-Za-z][^\]\s]*)\])?$"
)
# GNU ld: "main.c:(.text+0x1e): undefined reference to `foo'" or "/usr/bin/ld: x.o: ... multiple definition ..."
_LINKER_SECTION = re.compile(r"^(?:\S*ld(?:\.\w+)?: )?(?P<file>[^:\n]+?):(?:(?P<line>\d+)|\([^)]*\)): (?P<msg>.*)$")
_LINKER_PHRASES = ("undefined reference to", "multiple definition of", "cannot find -l", "first defined here")
_LINKER_PLAIN = re.compile(r"^\S*ld(?:\.\w+)?: (?P<msg>.*)$")


def _map_path(raw: str, sandbox_root: Path | None) -> str:
    """Sandbox-absolute paths become workspace-relative; relative ones lose a leading './'."""
    path = raw.strip()
    if sandbox_root is not None:
        for root in {str(sandbox_root), str(sandbox_root.resolve())}:
            prefix = root.rstrip("/") + "/"
            if path.startswith(prefix):
                return path[len(prefix):]
    return path[2:] if path.startswith("./") else path


def parse_diagnostics(text: str, sandbox_root: str | Path | None = None) -> list[Diagnostic]:
    """All diagnostics in compiler/linker output, in order, duplicates removed."""
    root = Path(sandbox_root) if sandbox_root is not None else None
    found: list[Diagnostic] = []
    seen: set[Diagnostic] = set()
    for raw_line in text.splitlines():
        line = raw_line.rstrip()
        diag = _parse_line(line, root)
        if diag is not None and diag not in seen:
            seen.add(diag)
            found.append(diag)
    return found


def _parse_line(line: str, root: Path | None) -> Diagnostic | None:
    m = _COMPILER.match(line)
    if m and not line.startswith("collect2:"):
        sev = "error" if m["sev"] == "fatal error" else m["sev"]
        return Diagnostic(
            file=_map_path(m["file"], root), line=int(m["line"]), col=int(m["col"]) if m["col"] else None,
            severity=sev, message=m["msg"], flag=m["flag"],
        )
    if any(p in line for p in _LINKER_PHRASES):
        m = _LINKER_SECTION.match(line)
        if m:
            sev = "note" if m["msg"].startswith("first defined here") else "error"
            return Diagnostic(
                file=_map_path(m["file"], root), line=int(m["line"]) if m["line"] else None, col=None,
                severity=sev, message=m["msg"],
            )
        m = _LINKER_PLAIN.match(line)
        if m:
            return Diagnostic(file="", line=None, col=None, severity="error", message=m["msg"])
    return None


def _warning_key(d: Diagnostic) -> tuple[str, str, str | None]:
    # Line numbers shift when code is edited; the same warning text on the same file is the same warning.
    return (d.file, d.message, d.flag)


def new_warnings(before: list[Diagnostic], after: list[Diagnostic]) -> list[Diagnostic]:
    """Warnings in `after` that `before` did not have (counted, so a second copy of a warning is new)."""
    return _new_of(before, after, "warning")


def new_errors(before: list[Diagnostic], after: list[Diagnostic]) -> list[Diagnostic]:
    """Errors in `after` that `before` did not have: the ones a change caused (a missing generated header, say,
    fails the unchanged unit too)."""
    return _new_of(before, after, "error")


def _new_of(before: list[Diagnostic], after: list[Diagnostic], severity: str) -> list[Diagnostic]:
    budget = Counter(_warning_key(d) for d in before if d.severity == severity)
    fresh: list[Diagnostic] = []
    for d in after:
        if d.severity != severity:
            continue
        key = _warning_key(d)
        if budget[key] > 0:
            budget[key] -= 1
        else:
            fresh.append(d)
    return fresh
