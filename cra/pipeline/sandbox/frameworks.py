"""Detect a C project's test framework and run its tests (or a generated test) inside the sandbox.

Trust rule: a command named by the user's config (`test_command`) or by the project's build files (`make test`,
`ctest`) runs only when the caller passes trusted=True; otherwise UntrustedCommand is raised (config command) or
the tests are built directly with the compiler (build-file commands), a command cra itself chooses.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import msgspec

from cra.pipeline.sandbox.condense import condense
from cra.pipeline.sandbox.diagnostics import Diagnostic, parse_diagnostics
from cra.pipeline.sandbox.flags import DEFAULT_FLAGS, rebase_flags
from cra.pipeline.sandbox.limits import Limits, RunResult, SandboxError
from cra.pipeline.sandbox.runner import make_sandbox_dir, remove_sandbox_dir, run_sandboxed
from cra.pipeline.sandbox.test_report import TestRunReport
from cra.pipeline.sandbox.testrun import OUTPUT_CHARS, TEST_LIMITS, UntrustedCommand, run_tests
from cra.pipeline.sandbox.testrun_parse import summary_counts
from cra.pipeline.sandbox.validate import WORK_DIR
from cra.pipeline.sandbox.workspace_copy import copy_workspace

__all__ = ["OUTPUT_CHARS", "TEST_LIMITS", "TestFramework", "TestResult", "UntrustedCommand", "defines_main",
           "detect_test_framework", "run_generated_test", "run_project_tests"]
TEST_DIR_NAMES = frozenset({"test", "tests", "t", "unit", "unittest", "unittests", "check"})
BUILD_DIR_NAMES = frozenset({"build", "out", "CMakeFiles", WORK_DIR})
BUILD_DIR_PREFIXES = ("build-", "cmake-build")
GENERATED_TEST_NAME = "cra_generated_test.c"

_MAIN = re.compile(r"^\s*(?:(?:static|extern)\s+)?(?:int|void)\s+main\s*\(", re.MULTILINE)
_TEST_FILE = re.compile(r"^(test_.*|.*_test|.*_tests|test)\.c$")
_MAKE_TARGET = re.compile(r"^(test|check)\s*:(?!=)", re.MULTILINE)
_CMAKE_TESTS = re.compile(r"\b(enable_testing|add_test)\s*\(", re.IGNORECASE)

class TestFramework(msgspec.Struct):
    """name: "unity" | "cmocka" | "ctest" | "make" | "assert" | "none" (the assertion library wins over the
    runner); runner: "ctest" | "make" | "direct"; test_files: workspace-relative test programs (with main)."""

    name: str
    library: str | None
    runner: str
    test_files: list[str]
    make_target: str | None = None


class TestResult(msgspec.Struct):
    """ok: None when there was nothing to run; output: condensed build + test output."""

    ok: bool | None
    framework: str
    passed: int
    failed: int
    output: str
    diagnostics: list[Diagnostic]
    seconds: float
    command: str = ""


def _is_build_path(rel: Path) -> bool:
    return any(part in BUILD_DIR_NAMES or part.startswith(BUILD_DIR_PREFIXES) for part in rel.parts[:-1])


def _c_files(root: Path) -> list[Path]:
    return sorted(
        p.relative_to(root) for p in root.rglob("*.c")
        if p.is_file() and not _is_build_path(p.relative_to(root)) and not any(
            part.startswith(".") for part in p.relative_to(root).parts)
    )


def _is_test_file(rel: Path) -> bool:
    return bool(_TEST_FILE.match(rel.name)) or any(part.lower() in TEST_DIR_NAMES for part in rel.parts[:-1])


def defines_main(text: str) -> bool:
    return bool(_MAIN.search(text))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _library_of(texts: list[str]) -> str | None:
    joined = "\n".join(texts)
    if "unity.h" in joined or "UNITY_BEGIN" in joined:
        return "unity"
    if "cmocka.h" in joined:
        return "cmocka"
    if re.search(r"#\s*include\s*<assert\.h>", joined) or re.search(r"\bassert\s*\(", joined):
        return "assert"
    return None


def detect_test_framework(root: str | Path) -> TestFramework:
    """Inspect test sources and build files (nothing is executed)."""
    root_p = Path(root).resolve()
    tests = [rel for rel in _c_files(root_p) if _is_test_file(rel)]
    texts = {rel: _read(root_p / rel) for rel in tests}
    programs = [rel.as_posix() for rel in tests if defines_main(texts[rel])]
    library = _library_of(list(texts.values()))
    runner, target = "direct", None
    cmake = root_p / "CMakeLists.txt"
    makefile = next((root_p / n for n in ("GNUmakefile", "Makefile", "makefile") if (root_p / n).is_file()), None)
    if cmake.is_file() and _CMAKE_TESTS.search(_read(cmake)):
        runner = "ctest"
    elif makefile is not None and (m := _MAKE_TARGET.search(_read(makefile))):
        runner, target = "make", m.group(1)
    if library in ("unity", "cmocka"):
        name = library
    elif runner != "direct":
        name = runner
    elif library == "assert" and programs:
        name = "assert"
    else:
        name = "none"
    return TestFramework(name=name, library=library, runner=runner, test_files=programs, make_target=target)


def _counts(output: str, returncode: int | None, library: str | None) -> tuple[int, int]:
    return summary_counts(output, returncode, library)


def _header_dirs(root: Path) -> list[str]:
    dirs = {p.parent for p in root.rglob("*.h") if not _is_build_path(p.relative_to(root))}
    dirs.add(root)
    return [f"-I{d}" for d in sorted(dirs)]


def _link_flags(texts: list[str]) -> list[str]:
    libs = ["-lm"]
    if any("cmocka.h" in t for t in texts):
        libs.append("-lcmocka")
    return libs


def _build_and_run(
    sandbox: Path, program: Path, sources: list[Path], compiler: str, flags: list[str], limits: Limits,
    library: str | None,
) -> tuple[int, int, list[Diagnostic], list[str]]:
    """Compile one test program with the project's library sources and run it."""
    texts = [_read(sandbox / program)] + [_read(sandbox / s) for s in sources]
    binary = f"{WORK_DIR}/{program.with_suffix('').as_posix().replace('/', '__')}"
    argv = [compiler, *flags, *_header_dirs(sandbox), "-fdiagnostics-color=never", "-o", binary,
            program.as_posix(), *(s.as_posix() for s in sources), *_link_flags(texts)]
    build = run_sandboxed(argv, sandbox, limits)
    diags = parse_diagnostics(build.stderr, sandbox)
    log = [f"$ build {program.as_posix()}", build.stderr.replace(str(sandbox) + "/", "")]
    if not build.ok:
        log.append(f"build failed ({_reason(build)})")
        return 0, 1, diags, log
    run = run_sandboxed([f"./{binary}"], sandbox, limits)
    log += [f"$ run {program.as_posix()}", run.stdout, run.stderr]
    if run.killed_reason:
        log.append(f"test program stopped: {run.killed_reason}")
    passed, failed = _counts(run.stdout + "\n" + run.stderr, run.returncode, library)
    if run.killed_reason and failed == 0:
        failed = 1
    return passed, failed, diags, log


def _reason(result: RunResult) -> str:
    return result.killed_reason or f"exit {result.returncode}"


def _library_sources(sandbox: Path, exclude: set[Path]) -> list[Path]:
    """Every non-test .c file that does not define main: the code under test and its dependencies."""
    return [rel for rel in _c_files(sandbox)
            if rel not in exclude and not _is_test_file(rel) and not defines_main(_read(sandbox / rel))]


def run_project_tests(
    workspace_root: str | Path, changed: dict[str, str], *, limits: Limits = TEST_LIMITS,
    test_command: str | None = None, trusted: bool = False, compiler: str = "gcc",
    flags: list[str] | None = None, output_chars: int = OUTPUT_CHARS,
) -> TestResult:
    """Run the project's tests against `changed` (path -> new text) in a sandboxed copy: `testrun.run_tests`
    summed up into one result (kept for callers that want a single pass/fail and counts).

    Raises UntrustedCommand when test_command is given and trusted is False (nothing is copied or run).
    """
    report = run_tests(workspace_root, changed, trusted=trusted, test_command=test_command, compiler=compiler,
                       flags=flags, limits=limits)
    return summarize(report, detect_test_framework(workspace_root).name, output_chars)


def summarize(report: TestRunReport, framework: str, output_chars: int = OUTPUT_CHARS) -> TestResult:
    """One TestResult from a per-program report: ok is None when nothing ran."""
    passed = failed = 0
    diags: list[Diagnostic] = []
    log: list[str] = []
    for program in report.programs:
        if program.status == "passed":
            passed += max(program.passed_count, 1)
        elif program.status != "not_run":
            passed += program.passed_count
            failed += max(program.failed_count, 1)
        diags += [d for d in program.diagnostics if d not in diags]
        log.append(f"== {program.name}: {program.status}" + (f" ({program.reason})" if program.reason else ""))
        if program.output:
            log.append(program.output)
    ran = any(p.status != "not_run" for p in report.programs)
    if not ran:
        return TestResult(ok=None, framework=framework, passed=0, failed=0,
                          output=report.not_run_reason or "no tests ran", diagnostics=diags, seconds=report.seconds,
                          command=report.command)
    return TestResult(ok=failed == 0, framework=framework, passed=passed, failed=failed,
                      output=condense("\n".join(log), output_chars), diagnostics=diags, seconds=report.seconds,
                      command=report.command)


def _sandboxed_flags(flags: list[str] | None, root: Path, sandbox: Path) -> list[str]:
    """Flags naming the workspace (-I, -include) are pointed at the sandbox copy: the build never reads the user's
    tree (and the sandbox user could not read it anyway)."""
    return rebase_flags(list(flags or DEFAULT_FLAGS), root, sandbox)


def run_generated_test(
    workspace_root: str | Path, sources: list[str], test_source_text: str, *,
    changed: dict[str, str] | None = None, limits: Limits = TEST_LIMITS, compiler: str = "gcc",
    flags: list[str] | None = None, output_chars: int = OUTPUT_CHARS,
) -> TestResult:
    """Compile `test_source_text` (which must define main) against `sources` (workspace-relative: the unit under
    test and its dependencies; files defining main are left out) and run it in a sandboxed copy."""
    if not defines_main(test_source_text):
        raise SandboxError("the generated test has no main function, so there is nothing to run")
    started = time.monotonic()
    root = Path(workspace_root).resolve()
    sandbox = make_sandbox_dir()
    try:
        copy_workspace(root, sandbox, changed=changed)
        work = sandbox / WORK_DIR
        work.mkdir(exist_ok=True)
        missing = [s for s in sources if not (sandbox / s).is_file()]
        if missing:
            raise SandboxError(f"source files not found in the workspace: {', '.join(missing)}")
        units = [Path(s) for s in sources if not defines_main(_read(sandbox / s))]
        if "unity.h" in test_source_text:
            units += [rel for rel in _c_files(sandbox) if rel.name == "unity.c" and rel not in units]
        program = Path(WORK_DIR) / GENERATED_TEST_NAME
        (sandbox / program).write_text(test_source_text)
        library = _library_of([test_source_text])
        passed, failed, diags, log = _build_and_run(
            sandbox, program, units, compiler, _sandboxed_flags(flags, root, sandbox), limits, library)
        return TestResult(ok=failed == 0, framework=library or "none", passed=passed, failed=failed,
                          output=condense("\n".join(x for x in log if x), output_chars), diagnostics=diags,
                          seconds=round(time.monotonic() - started, 4), command=f"{compiler} (direct build)")
    finally:
        remove_sandbox_dir(sandbox)
