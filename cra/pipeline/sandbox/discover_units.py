"""Which compilation units each test program of a C project needs (static analysis; nothing is executed).

A unit is one .c/.cc/.cpp file. Its definitions (non-static functions and file-scope variables) and references
come from tree-sitter-c (`cra.pipeline.context.cparse`); C++ files, which tree-sitter-c cannot parse reliably,
get a plain identifier scan for their references. A program is built from its own file, the `.c` files it
`#include`s (compiled as part of it, never linked again) and, transitively, the library units defining a name it
uses. Units whose `main` is active are never linked into another program; a `main` behind `#ifdef X_TEST` marks a
self-test, built alone with `-DX_TEST`; one behind `#if 0` is none. The project's decorator macros (`ZEXPORT`,
`local`, `OF(args)`, `CJSON_PUBLIC(type)`) are expanded before parsing (see decorator_macros). What static reading
gets wrong about #ifdef branches, the linker settles: a program whose link leaves names undefined is planned again
with `missing` (see testrun).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Iterator
from functools import cached_property
from pathlib import Path

import msgspec

from cra.pipeline.context import symbols as k
from cra.pipeline.context.cparse import parse_source
from cra.pipeline.sandbox.decorator_macros import (
    Decorator,
    decorator_macros,
    expand_decorators,
    macro_definitions,
)

C_SUFFIXES = frozenset({".c"})
CXX_SUFFIXES = frozenset({".cc", ".cpp", ".cxx"})
HEADER_SUFFIXES = frozenset({".h", ".hh", ".hpp", ".hxx"})
UNIT_SUFFIXES = C_SUFFIXES | CXX_SUFFIXES
TEST_DIR_NAMES = frozenset({"test", "tests", "t", "unit", "unittest", "unittests", "check"})
SKIPPED_DIR_NAMES = frozenset({"build", "out", "CMakeFiles", ".cra-work", "node_modules", "venv"})
SKIPPED_DIR_PREFIXES = ("build-", "cmake-build", ".")
MAX_SOURCE_BYTES = 2 * 1024 * 1024

_TEST_NAME = re.compile(r"^(test_.*|.*_test|.*_tests|test|.*-test|test-.*|check_.*)$")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMENT_OR_STRING = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'", re.S)
_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)
_CXX_MAIN = re.compile(r"^\s*(?:int|auto|void)\s+main\s*\(", re.M)
_DIRECTIVE = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
_DEFINED = re.compile(r"^\s*(?:defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)|(\w+))\s*$")
DEAD_MAIN = "0"  # main_guard of a main behind `#if 0`: no main at all
SELF_TEST_MARK = "TEST"  # a main behind a define whose name holds this (X_TEST, UNIT_TEST, TESTING) is a self-test


class UnitInfo(msgspec.Struct, kw_only=True):
    """What one source file defines and uses. `main_guard`: the macro that must be defined for its `main` to
    exist ("" when main is unconditional or absent)."""

    path: str
    language: str  # "c" | "c++" | "header"
    defines: list[str] = []
    uses: list[str] = []
    has_main: bool = False
    main_guard: str = ""
    includes: list[str] = []  # workspace-relative files it includes with "..." (resolved), headers and .c alike

    @property
    def active_main(self) -> bool:
        return self.has_main and not self.main_guard


class ProgramPlan(msgspec.Struct, kw_only=True):
    """One test program cra builds itself. `units`: what is compiled and linked, the program's file first;
    `included`: `.c` files it `#include`s (part of it, not linked again); `defines`: -D switches for its own file;
    `linker`: "gcc" or "g++"; `unresolved`: names it uses that no unit defines (libc and the like, normally)."""

    name: str
    source: str
    units: list[str]
    included: list[str] = []
    defines: list[str] = []
    linker: str = "gcc"
    unresolved_count: int = 0


def is_skipped_dir(part: str) -> bool:
    return part in SKIPPED_DIR_NAMES or part.startswith(SKIPPED_DIR_PREFIXES)


def source_files(root: Path, suffixes: frozenset[str]) -> list[str]:
    """Workspace-relative paths of the files with these suffixes, build and hidden folders left out."""
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if path.suffix in suffixes and path.is_file() and not any(is_skipped_dir(p) for p in rel.parts[:-1]):
            out.append(rel.as_posix())
    return sorted(out)


def is_test_file(rel: str) -> bool:
    path = Path(rel)
    return bool(_TEST_NAME.match(path.stem)) or any(part.lower() in TEST_DIR_NAMES for part in path.parts[:-1])


def main_guard(text: str, main_line: int) -> str:
    """The macro whose `#ifdef`/`#if defined()` branch holds line `main_line` (0-based), "" when none does,
    DEAD_MAIN when an `#if 0` does."""
    stack: list[tuple[str, bool]] = []  # (macro or "", in the positive branch)
    for number, line in enumerate(text.splitlines()):
        if number >= main_line:
            break
        m = _DIRECTIVE.match(line)
        if not m:
            continue
        word, rest = m.group(1), m.group(2).split("//")[0].split("/*")[0]
        if word in ("if", "ifdef", "ifndef"):
            macro = ""
            if word == "ifdef":
                macro = rest.strip()
            elif word == "if" and (d := _DEFINED.match(rest)):
                macro = next(g for g in d.groups() if g)
            stack.append((macro, word != "ifndef"))
        elif word in ("elif", "else") and stack:
            stack[-1] = ("", False)
        elif word == "endif" and stack:
            stack.pop()
    if any(macro == "0" and positive for macro, positive in stack):
        return DEAD_MAIN
    return next((macro for macro, positive in reversed(stack) if macro and positive and not macro[0].isdigit()), "")


def by_depth(paths: Iterable[str]) -> list[str]:
    """Paths shallowest first (the order `resolve_include` searches them in)."""
    return sorted(paths, key=lambda p: (p.count("/"), p))


def resolve_include(rel: str, target: str, known: Container[str], ordered: list[str]) -> str | None:
    """`#include "target"` in file `rel` as a workspace file: next to the includer first, then the shallowest
    file (of `ordered`, see `by_depth`) ending in it."""
    parts: list[str] = []
    for part in (Path(rel).parent / target).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    local = "/".join(parts)
    if local in known:
        return local
    suffix = "/" + target.lstrip("./")
    return next((p for p in ordered if p == target or p.endswith(suffix)), None)


def including_units(root: str | Path, rel: str, overrides: dict[str, str] | None = None) -> list[str]:
    """The units that compile `rel` as part of themselves, directly or through headers and other included `.c`
    files: the outermost library units that `#include` it (lzlib.c includes encoder_base.c), then the test
    programs that do; [] when nothing includes it. `overrides`: texts to read instead of the disk's."""
    root_p = Path(root).resolve()
    texts: dict[str, str] = {}
    for path in source_files(root_p, UNIT_SUFFIXES | HEADER_SUFFIXES):
        try:
            if (root_p / path).stat().st_size <= MAX_SOURCE_BYTES:
                texts[path] = (root_p / path).read_text(errors="replace")
        except OSError:
            continue
    texts.update({p: t for p, t in (overrides or {}).items() if Path(p).suffix in UNIT_SUFFIXES | HEADER_SUFFIXES})
    ordered = by_depth(texts)
    included_by: dict[str, set[str]] = {}
    for path, text in texts.items():
        for target in _INCLUDE.findall(text):
            hit = resolve_include(path, target, texts, ordered)
            if hit is not None and hit != path:
                included_by.setdefault(hit, set()).add(path)

    def ancestors(path: str) -> set[str]:
        found: set[str] = set()
        stack = [path]
        while stack:
            for parent in included_by.get(stack.pop(), ()):
                if parent not in found:
                    found.add(parent)
                    stack.append(parent)
        return found

    def is_unit(path: str) -> bool:
        return Path(path).suffix in UNIT_SUFFIXES

    outermost: set[str] = set()
    for unit in filter(is_unit, ancestors(rel)):
        if is_test_file(unit):  # a test program: only one nothing includes
            keep = not included_by.get(unit)
        else:  # library code: the outermost library unit (a test may include it in turn, as cJSON's do)
            keep = not any(is_unit(a) and not is_test_file(a) for a in ancestors(unit))
        if keep:
            outermost.add(unit)
    return sorted(outermost, key=lambda p: (is_test_file(p), p.count("/"), p))


def _strip_comments(text: str) -> str:
    return _COMMENT_OR_STRING.sub(" ", text)


def scan_unit(rel: str, data: bytes) -> UnitInfo:
    """Definitions, uses and `main` of one file (headers: only names their macros and inline bodies use)."""
    suffix = Path(rel).suffix
    text = data.decode("utf-8", errors="replace")
    includes = _INCLUDE.findall(text)
    if suffix in CXX_SUFFIXES:
        stripped = _strip_comments(text)
        main = _CXX_MAIN.search(stripped)
        guard = main_guard(text, text.count("\n", 0, main.start())) if main else ""
        has_main = bool(main) and guard != DEAD_MAIN
        return UnitInfo(path=rel, language="c++", uses=sorted(set(_IDENT.findall(stripped))), has_main=has_main,
                        main_guard=guard if has_main else "", includes=includes)
    index = parse_source(rel, data)
    defines: set[str] = set()
    main_line = -1
    local_bodies: set[str] = set()
    for sym in index.symbols:
        head = sym.signature.lstrip()
        if sym.kind == k.FUNCTION:
            local_bodies.add(sym.name)
            if sym.name == "main":
                main_line = sym.start_line
            elif not head.startswith(("static", "inline")):
                defines.add(sym.name)
        elif sym.kind == k.PROTOTYPE and data[sym.end_byte:].lstrip()[:1] == b"{":
            # A K&R definition with a pointer result (`void *f(n) unsigned n; {`) reads as a prototype.
            local_bodies.add(sym.name)
            if not head.startswith(("static", "inline", "extern")):
                defines.add(sym.name)
        elif sym.kind == k.VARIABLE and not head.startswith(("extern", "static")):
            defines.add(sym.name)
        elif sym.kind in (k.MACRO, k.MACRO_FUNCTION):
            local_bodies.add(sym.name)
    names = index.references.name_list()
    if suffix in HEADER_SUFFIXES:
        # A header's prototypes are promises, not uses: only macro bodies and inline functions call anything.
        owners = index.references.owner_list()
        uses = {n for n, o in zip(names, owners, strict=True) if o in local_bodies}
        return UnitInfo(path=rel, language="header", uses=sorted(uses), includes=includes)
    guard = main_guard(text, main_line) if main_line >= 0 else ""
    has_main = main_line >= 0 and guard != DEAD_MAIN
    return UnitInfo(path=rel, language="c", defines=sorted(defines), uses=sorted(set(names) - {"main"}),
                    has_main=has_main, main_guard=guard if has_main else "", includes=includes)


class ProjectUnits:
    """Every unit and header of a tree, scanned once; plans each test program's build."""

    def __init__(self, root: Path, texts: dict[str, bytes]) -> None:
        self.root = root
        decoded = {rel: data.decode("utf-8", errors="replace") for rel, data in texts.items()}
        self.units = {rel: scan_unit(rel, expand_decorators(text, macros).encode())
                      for rel, text, macros in self._decorated(decoded)}
        self._by_name: dict[str, list[str]] = {}
        for rel, info in self.units.items():
            info.includes = [hit for target in info.includes if (hit := self._resolve(rel, target))]
        for rel, info in sorted(self.units.items()):
            for name in info.defines:
                self._by_name.setdefault(name, []).append(rel)

    @staticmethod
    def _decorated(decoded: dict[str, str]) -> Iterator[tuple[str, str, dict[str, Decorator]]]:
        """Each file with the decorator macros to expand in it before parsing (`int API name(...)` with `#define
        API` would otherwise define "API", not "name"): those of the headers it includes win over the rest of the
        tree's (a contrib folder's `#define local` must not undo the library's `#define local static`)."""
        ordered = by_depth(decoded)
        includes = {rel: [hit for target in _INCLUDE.findall(text)
                          if (hit := resolve_include(rel, target, decoded, ordered)) is not None]
                    for rel, text in decoded.items()}
        definitions = {rel: macro_definitions(text) for rel, text in decoded.items()}
        everywhere = decorator_macros(definitions.values())
        for rel, text in decoded.items():
            seen = {rel}
            stack = [rel]
            while stack:
                for inc in includes[stack.pop()]:
                    if inc not in seen:
                        seen.add(inc)
                        stack.append(inc)
            own = decorator_macros(definitions[p] for p in sorted(seen) if definitions[p])
            yield rel, text, everywhere | own

    @classmethod
    def scan(cls, root: str | Path, overrides: dict[str, str] | None = None) -> ProjectUnits:
        """Scan `root`, reading `overrides` (workspace-relative path -> text) instead of the files on disk."""
        root_p = Path(root).resolve()
        texts: dict[str, bytes] = {}
        for rel in source_files(root_p, UNIT_SUFFIXES | HEADER_SUFFIXES):
            try:
                if (root_p / rel).stat().st_size <= MAX_SOURCE_BYTES:
                    texts[rel] = (root_p / rel).read_bytes()
            except OSError:
                continue
        for rel, text in (overrides or {}).items():
            if Path(rel).suffix in UNIT_SUFFIXES | HEADER_SUFFIXES:
                texts[rel] = text.encode()
        return cls(root_p, texts)

    def _resolve(self, rel: str, target: str) -> str | None:
        return resolve_include(rel, target, self.units, self._sorted_paths)

    @cached_property
    def _sorted_paths(self) -> list[str]:
        return by_depth(self.units)

    def _closure(self, rel: str) -> list[str]:
        """The file plus every file it includes, transitively (headers and .c files)."""
        seen = [rel]
        stack = [rel]
        while stack:
            for inc in self.units[stack.pop()].includes:
                if inc not in seen and inc in self.units:
                    seen.append(inc)
                    stack.append(inc)
        return seen

    def programs(self) -> list[ProgramPlan]:
        """Test programs: test files with their own main, and self-tests behind a *TEST* define."""
        plans = []
        for rel, info in sorted(self.units.items()):
            if info.language == "header" or not info.has_main:
                continue
            if is_test_file(rel):
                defines = [info.main_guard] if info.main_guard else []
                name = rel if not defines else f"{rel}[-D{info.main_guard}]"
            elif info.main_guard and SELF_TEST_MARK in info.main_guard.upper():
                defines, name = [info.main_guard], f"{rel}[-D{info.main_guard}]"
            else:
                continue
            plans.append(self.plan(rel, name=name, defines=defines))
        return plans

    def plan(self, source: str, *, name: str | None = None, defines: list[str] | None = None,
             missing: Iterable[str] = ()) -> ProgramPlan:
        """The units program `source` needs: what it uses, defined by library units, transitively. `missing`:
        names the linker found undefined although the program's own files seem to define them (a definition
        behind an #ifdef that is off): they are taken from library units instead."""
        own = self._closure(source)
        included = [p for p in own if p != source and self.units[p].language != "header"]
        units = [source]
        defined: set[str] = set()
        used: set[str] = set()
        taken = set(own)

        def absorb(unit_files: list[str]) -> None:
            for path in unit_files:
                defined.update(self.units[path].defines)
                used.update(self.units[path].uses)

        absorb(own)
        missing = set(missing)
        # The program's own definitions of what the linker missed are dead code, and so may be its others: a
        # library unit defining them too is no clash.
        dead = set(defined) if missing else set()
        defined -= missing
        used |= missing
        unresolved: set[str] = set()
        while True:
            wanted = sorted(used - defined - unresolved - {"main"})
            if not wanted:
                break
            for name_used in wanted:
                provider = self._provider(name_used, source, taken, defined - dead)
                if provider is None:
                    unresolved.add(name_used)
                    continue
                closure = [p for p in self._closure(provider) if p not in taken]
                taken.update(closure)
                units.append(provider)
                absorb(closure)
                break
        linker = "g++" if self.units[source].language == "c++" else "gcc"
        return ProgramPlan(name=name or source, source=source, units=units, included=included,
                           defines=list(defines or []), linker=linker, unresolved_count=len(unresolved))

    def _provider(self, name: str, source: str, taken: set[str], defined: set[str]) -> str | None:
        """The library unit to link for `name`: not the program's, no active main, no clash with what is
        already defined; nearest to the program's folder first."""
        candidates = [p for p in self._by_name.get(name, []) if p not in taken and not self.units[p].active_main
                      and not self._included_elsewhere(p, taken)]
        clean = [p for p in candidates if not (set(self.units[p].defines) & defined)]
        pool = clean or []
        if not pool:
            return None
        src_parts = Path(source).parts

        def distance(p: str) -> tuple[int, str]:
            parts = Path(p).parts
            common = 0
            for a, b in zip(src_parts[:-1], parts[:-1], strict=False):
                if a != b:
                    break
                common += 1
            return (-common, p)

        return min(pool, key=distance)

    def _included_elsewhere(self, unit: str, taken: set[str]) -> bool:
        """A .c file some taken unit #includes is already part of that unit."""
        return any(unit in self.units[t].includes for t in taken)
