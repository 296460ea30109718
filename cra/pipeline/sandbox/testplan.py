"""Decide how a project's tests are built and run (detection only: nothing is executed).

Trusted workspaces use the project's own build in the sandbox copy (CMake + ctest, Meson, autotools, a Make
`check`/`test` target) or the configured test command; untrusted ones get cra's own gcc/g++ commands, one build per
test program with only the units it needs (see discover_units).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import msgspec

from cra.pipeline.sandbox.discover_units import (
    CXX_SUFFIXES,
    HEADER_SUFFIXES,
    ProgramPlan,
    ProjectUnits,
    source_files,
)
from cra.pipeline.sandbox.flags import DEFAULT_FLAGS, flags_for
from cra.pipeline.sandbox.limits import SandboxError
from cra.pipeline.sandbox.project_std import gnu_dialect, project_c_standard
from cra.pipeline.sandbox.test_report import RunKind
from cra.pipeline.sandbox.validate import WORK_DIR

CXX_DEFAULT_FLAGS: tuple[str, ...] = ("-std=c++17", "-Wall", "-Wextra")
CMAKE_BUILD = f"{WORK_DIR}/cmake-build"
MESON_BUILD = f"{WORK_DIR}/meson-build"
OBJ_DIR = f"{WORK_DIR}/obj"
BIN_DIR = f"{WORK_DIR}/bin"
_MAKE_TARGET = re.compile(r"^(check|test)\s*:(?!=)", re.M)
_CMAKE_TESTS = re.compile(r"\b(enable_testing|add_test|include\s*\(\s*CTest)\b", re.I)
_MESON_TESTS = re.compile(r"\btest\s*\(")
_INCLUDE_LINE = re.compile(r"^\s*#\s*include\b")
_PATH_LITERAL = re.compile(r'"([A-Za-z0-9_][A-Za-z0-9_.+-]*/[A-Za-z0-9_./+-]*)"')
_C_STD = re.compile(r"^-std=(c|gnu)\d\w*$")
_CXX_STD = re.compile(r"^-std=(c|gnu)\+\+\w*$")


class Step(msgspec.Struct, kw_only=True):
    """One shell command of a project build/test run. role: "configure" | "build" | "list" | "test"."""

    role: str
    command: str


class PlannedProgram(ProgramPlan, kw_only=True):
    """A test program cra builds itself (its units, as discovery found them) with the exact compile/link argv
    (workspace-relative paths). The library units' objects go into `archive` (a static library the link names
    after the program's own object), so the linker takes only the ones the program needs: a unit discovery took
    for a name it did not really need cannot break the link with undefined references of its own."""

    compile: list[list[str]] = []
    link: list[str] = []
    archive: str = ""
    run_dir: str = ""  # workspace-relative folder the program runs in ("" = the root); see `run_dir`


class TestPlan(msgspec.Struct, kw_only=True):
    """kind: how the tests run; steps: the project/config commands (trusted kinds); programs: direct builds;
    not_runnable: why something found cannot run (untrusted project build, missing tools, no tests);
    project_build: the build system seen in the tree, trusted or not."""

    root: str
    kind: RunKind
    trusted: bool
    command: str = ""
    steps: list[Step] = []
    programs: list[PlannedProgram] = []
    project_build: str = ""
    not_runnable: list[str] = []


def project_build(root: Path) -> tuple[str, str]:
    """(build system, make target) found in the tree: "cmake", "meson", "autotools", "make" or ""."""
    cmake = root / "CMakeLists.txt"
    if cmake.is_file() and _CMAKE_TESTS.search(_read(cmake)):
        return "cmake", ""
    meson = root / "meson.build"
    if meson.is_file() and _MESON_TESTS.search(_read_tree(root, "meson.build")):
        return "meson", ""
    if any((root / n).is_file() for n in ("configure.ac", "configure.in")) or (
            (root / "configure").is_file() and (root / "Makefile.in").is_file()):
        return "autotools", "check"
    for name in ("GNUmakefile", "Makefile", "makefile"):
        if (root / name).is_file() and (m := _MAKE_TARGET.search(_read(root / name))):
            return "make", m.group(1)
    return "", ""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _read_tree(root: Path, name: str) -> str:
    """Every `name` file under root (meson's tests often live in a subdir's meson.build)."""
    return "\n".join(_read(p) for p in sorted(root.rglob(name)) if WORK_DIR not in p.parts)


def _jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def project_steps(kind: str, target: str) -> list[Step]:
    """The commands of the project's own build, run from the sandbox copy's root."""
    jobs = _jobs()
    if kind == "cmake":
        # Ninja when present: after a failed build it can say which test executables are stale (see testrun).
        ninja = shutil.which("ninja") is not None
        generator, keep_going = ("-G Ninja ", "-k 0") if ninja else ("", "-k")
        return [
            Step(role="configure", command=f"[ -f {CMAKE_BUILD}/CMakeCache.txt ] || "
                                           f"cmake {generator}-S . -B {CMAKE_BUILD} -DCMAKE_BUILD_TYPE=Debug"),
            Step(role="build", command=f"cmake --build {CMAKE_BUILD} --parallel {jobs} -- {keep_going}"),
            Step(role="list", command=f"cd {CMAKE_BUILD} && ctest --show-only=json-v1"),
            Step(role="test", command=f"cd {CMAKE_BUILD} && ctest --output-on-failure"),
        ]
    if kind == "meson":
        return [
            Step(role="configure", command=f"[ -f {MESON_BUILD}/build.ninja ] || meson setup {MESON_BUILD}"),
            Step(role="build", command=f"ninja -C {MESON_BUILD} -k 0 -j {jobs}"),
            Step(role="list", command=f"meson introspect --tests {MESON_BUILD}"),
            Step(role="test", command=f"meson test -C {MESON_BUILD} --no-rebuild --print-errorlogs"),
        ]
    if kind == "autotools":
        return [
            Step(role="configure", command="{ [ -x configure ] || { [ -x autogen.sh ] && ./autogen.sh; } || "
                                           "autoreconf -fi; } && { [ -f Makefile ] || ./configure; }"),
            Step(role="build", command=f"make -k -j {jobs}"),
            Step(role="test", command=f"make -k {target or 'check'}"),
        ]
    if kind == "make":
        return [Step(role="test", command=f"make {target}")]
    return []


def _missing_tools(kind: str) -> list[str]:
    needs = {"cmake": ["cmake", "ctest"], "meson": ["meson", "ninja"], "autotools": ["make"], "make": ["make"]}
    return [tool for tool in needs.get(kind, []) if shutil.which(tool) is None]


def _language_flags(flags: list[str], cxx: bool) -> list[str]:
    """Drop a -std= of the other language (compile_commands of a C file used for a C++ driver, or defaults)."""
    wrong = _C_STD if cxx else _CXX_STD
    return [f for f in flags if not wrong.match(f)]


def unit_flags(root: Path, unit: str, flags: list[str] | None) -> list[str]:
    """Compile flags for one unit: the caller's, else compile_commands.json's, else defaults + include dirs."""
    cxx = Path(unit).suffix in CXX_SUFFIXES
    if flags is not None:
        return _language_flags(list(flags), cxx)
    try:
        found = flags_for(root, unit, defaults=CXX_DEFAULT_FLAGS if cxx else DEFAULT_FLAGS).flags
    except SandboxError:
        found = list(CXX_DEFAULT_FLAGS if cxx else DEFAULT_FLAGS)
    return _language_flags(found, cxx)


def header_dirs(root: Path) -> list[str]:
    """-I for every folder holding a header, so a test finds its headers however the project lays them out."""
    dirs = sorted({(root / rel).parent for rel in source_files(root, HEADER_SUFFIXES)} | {root})
    return [f"-I{d}" for d in dirs]


def object_path(unit: str, defines: list[str]) -> str:
    tag = "".join(f"-D{d}" for d in defines)
    return f"{OBJ_DIR}/{unit.replace('/', '__')}{tag}.o"


def binary_path(name: str) -> str:
    return f"{BIN_DIR}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"


def run_dir(root: Path, source: str, text: str) -> str:
    """The folder a test program runs in: its own when a relative path its code names ("inputs/test1",
    "data/cases.json") exists next to it and not at the root, as when its build runs it from there; else the
    root ("")."""
    folder = Path(source).parent
    if folder == Path("."):
        return ""
    code = "\n".join(line for line in text.splitlines() if not _INCLUDE_LINE.match(line))
    for literal in _PATH_LITERAL.findall(code):
        name = literal.strip()
        if name.startswith("/") or ".." in Path(name).parts:
            continue
        try:
            if (root / folder / name).exists() and not (root / name).exists():
                return folder.as_posix()
        except (OSError, ValueError):
            continue
    return ""


def archive_path(name: str) -> str:
    return f"{OBJ_DIR}/lib{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.a"


def link_libraries(texts: list[str]) -> list[str]:
    libs = ["-lm"]
    joined = "\n".join(texts)
    if "cmocka.h" in joined:
        libs.append("-lcmocka")
    if "pthread.h" in joined:
        libs.append("-lpthread")
    return libs


def direct_programs(root: Path, changed: dict[str, str] | None, compiler: str, flags: list[str] | None,
                    ) -> list[PlannedProgram]:
    """cra's own build of each test program: compile argv per unit, then the link argv."""
    units = ProjectUnits.scan(root, changed)
    includes = header_dirs(root)
    out = []
    for plan in units.programs():
        out.append(_planned(root, plan, includes, compiler, flags, changed or {}))
    return out


def _test_build_flags(root: Path, unit: str, flags: list[str] | None) -> list[str]:
    """A unit's flags in a test build: a project that names no C standard is built by gcc's default, a GNU
    dialect, so cra's strict default (kept for judging the changed unit itself) becomes its GNU twin here."""
    chosen = unit_flags(root, unit, flags)
    if Path(unit).suffix in CXX_SUFFIXES or project_c_standard(root) is not None:
        return chosen
    return gnu_dialect(chosen)


def relinked_program(root: Path, program: PlannedProgram, missing: list[str], units: ProjectUnits, compiler: str,
                     flags: list[str] | None, changed: dict[str, str]) -> PlannedProgram | None:
    """`program` planned again after its link left `missing` undefined; None when no further unit defines them."""
    plan = units.plan(program.source, name=program.name, defines=program.defines, missing=missing)
    if set(plan.units) <= set(program.units):
        return None
    return _planned(root, plan, header_dirs(root), compiler, flags, changed)


def _planned(root: Path, plan: ProgramPlan, includes: list[str], compiler: str, flags: list[str] | None,
             changed: dict[str, str]) -> PlannedProgram:
    compile_argv = []
    objects = []
    texts = []
    for unit in plan.units:
        defines = plan.defines if unit == plan.source else []
        cxx = Path(unit).suffix in CXX_SUFFIXES
        tool = "g++" if cxx else compiler
        obj = object_path(unit, defines)
        objects.append(obj)
        compile_argv.append([tool, *_test_build_flags(root, unit, flags), *includes, *(f"-D{d}" for d in defines),
                             "-fdiagnostics-color=never", "-c", unit, "-o", obj])
        texts.append(changed.get(unit) or _read(root / unit))
    linker = "g++" if plan.linker == "g++" else compiler
    archive = archive_path(plan.name) if len(objects) > 1 else ""
    link = [linker, "-o", binary_path(plan.name), objects[0], *([archive] if archive else []),
            *link_libraries(texts)]
    fields = msgspec.structs.asdict(plan) | {"linker": linker, "compile": compile_argv, "link": link,
                                             "archive": archive, "run_dir": run_dir(root, plan.source, texts[0])}
    return PlannedProgram(**fields)


def detect_tests(root: str | Path, *, trusted: bool, test_command: str | None = None, compiler: str = "gcc",
                 flags: list[str] | None = None, changed: dict[str, str] | None = None) -> TestPlan:
    """How `run_tests` would build and run the tests of `root` (nothing is executed)."""
    root_p = Path(root).resolve()
    if not root_p.is_dir():
        raise SandboxError(f"{root} is not a directory")
    found, target = project_build(root_p)
    notes: list[str] = []
    if test_command is not None and trusted:
        return TestPlan(root=str(root_p), kind="config", trusted=True, command=test_command,
                        steps=[Step(role="test", command=test_command)], project_build=found)
    if test_command is not None:
        notes.append(f"the configured test command {test_command!r} runs only in a trusted workspace (--trust)")
    if found and trusted:
        missing = _missing_tools(found)
        if not missing:
            steps = project_steps(found, target)
            return TestPlan(root=str(root_p), kind=found, trusted=True,  # type: ignore[arg-type]
                            command=" && ".join(s.command for s in steps if s.role != "list"), steps=steps,
                            project_build=found, not_runnable=notes)
        notes.append(f"the project's {found} build needs {', '.join(missing)}, which is not installed; "
                     "building the tests directly instead")
    elif found:
        notes.append(f"the project's own {found} build runs only in a trusted workspace (pass --trust); "
                     "building the tests directly with cra's own compiler commands")
    programs = direct_programs(root_p, changed, compiler, flags)
    if not programs:
        notes.append("no test programs found (test files with a main function, or a self-test main behind a "
                     "*_TEST define)")
        return TestPlan(root=str(root_p), kind="none", trusted=trusted, project_build=found, not_runnable=notes)
    return TestPlan(root=str(root_p), kind="direct", trusted=trusted, command=f"{compiler} (direct build)",
                    programs=programs, project_build=found, not_runnable=notes)
