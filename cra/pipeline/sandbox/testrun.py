"""Run a project's tests for one tree state and report per test program (and per case where the runner says).

Trusted kinds (cmake, meson, autotools, make, config) run the project's own commands in a persistent sandbox copy
of the workspace (build_cache), so a second run after a one-file change rebuilds one unit. The direct kind builds
each test program with cra's own gcc/g++ commands in a throwaway copy, each library unit compiled once; the library
units go into a static archive, so the linker takes only those the program needs, a library unit that does not
compile here is left out unless the link needs it, and names a link leaves undefined are looked up again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from cra.pipeline.sandbox.build_cache import locked_build_dir, sync_tree
from cra.pipeline.sandbox.condense import condense
from cra.pipeline.sandbox.diagnostics import Diagnostic, parse_diagnostics
from cra.pipeline.sandbox.discover_units import ProjectUnits
from cra.pipeline.sandbox.flags import rebase_flags, restrict_untrusted
from cra.pipeline.sandbox.limits import Limits, RunResult, SandboxError
from cra.pipeline.sandbox.runner import make_sandbox_dir, remove_sandbox_dir, run_sandboxed
from cra.pipeline.sandbox.test_report import ProgramResult, ProgramStatus, TestRunReport
from cra.pipeline.sandbox.testplan import (
    BIN_DIR,
    CMAKE_BUILD,
    MESON_BUILD,
    OBJ_DIR,
    PlannedProgram,
    Step,
    TestPlan,
    detect_tests,
    relinked_program,
)
from cra.pipeline.sandbox.testrun_parse import (
    RunnerTest,
    automake_results,
    cases,
    ctest_results,
    listed_tests,
    meson_results,
    summary_counts,
)
from cra.pipeline.sandbox.validate import WORK_DIR
from cra.pipeline.sandbox.workspace_copy import copy_workspace

TEST_LIMITS = Limits(cpu_seconds=20, wall_seconds=60.0, memory_mb=2048, max_processes=64,
                     max_output_bytes=512 * 1024, max_file_bytes=256 * 1024 * 1024)
# Configure and build steps get at least this much: a small test limit (to catch a hanging test) must not stop
# the compiler first.
BUILD_FLOOR = Limits(cpu_seconds=300, wall_seconds=900.0, memory_mb=4096, max_processes=128,
                     max_output_bytes=2 * 1024 * 1024, max_file_bytes=512 * 1024 * 1024)
OUTPUT_CHARS = 4000
# A link that leaves names undefined is planned again with units defining them, at most this many times.
MAX_RELINKS = 3
_UNDEFINED = re.compile(r"undefined reference to [`']([^'`]+)'")


class UntrustedCommand(SandboxError):
    """A command from configuration or build files was about to run in an untrusted workspace."""


def build_limits(limits: Limits) -> Limits:
    return Limits(**{f: max(getattr(limits, f), getattr(BUILD_FLOOR, f)) for f in Limits.__struct_fields__})


def run_tests(
    root: str | Path, changed: dict[str, str], *, trusted: bool, test_command: str | None = None,
    compiler: str = "gcc", flags: list[str] | None = None, limits: Limits = TEST_LIMITS,
) -> TestRunReport:
    """Build and run the tests of `root` with `changed` (workspace-relative path -> text) applied in a sandbox
    copy. Raises UntrustedCommand for a test_command in an untrusted workspace (nothing runs), SandboxError when
    root is not a directory."""
    if test_command is not None and not trusted:
        raise UntrustedCommand(
            f"the workspace is not trusted, so the configured test command {test_command!r} was not run; "
            "trust the workspace (cra.trust, or --trust) to allow it")
    started = time.monotonic()
    root_p = Path(root).resolve()
    if not trusted:  # no config-named compiler or flag that could run a program
        build = restrict_untrusted(compiler, list(flags or []), root_p, trusted=False)
        compiler, flags = build.compiler, (build.flags if flags is not None else None)
    plan = detect_tests(root_p, trusted=trusted, test_command=test_command, compiler=compiler, flags=flags,
                        changed=changed)
    if plan.kind == "none":
        report = TestRunReport(kind="none", command="", not_run_reason="; ".join(plan.not_runnable))
    elif plan.kind == "direct":
        report = _run_direct(root_p, changed, plan, limits, _Relinker(root_p, changed, compiler, flags))
    else:
        report = _run_project(root_p, changed, plan, limits)
    report.seconds = round(time.monotonic() - started, 4)
    return report


# ---------------------------------------------------------------- direct builds (cra's own compiler commands)

class _Compiled(msgspec.Struct):
    ok: bool
    log: str
    diagnostics: list[Diagnostic]


class _Relinker:
    """Plans a program again when its link leaves names undefined: static discovery cannot see which #ifdef
    branch is on (minigzip.c's own gzwrite exists only with Z_SOLO), the linker can. The tree is scanned again
    only when some link needs it."""

    def __init__(self, root: Path, changed: dict[str, str], compiler: str, flags: list[str] | None) -> None:
        self.root, self.changed, self.compiler, self.flags = root, changed, compiler, flags
        self._units: ProjectUnits | None = None

    def __call__(self, program: PlannedProgram, missing: list[str]) -> PlannedProgram | None:
        if self._units is None:
            self._units = ProjectUnits.scan(self.root, self.changed)
        return relinked_program(self.root, program, missing, self._units, self.compiler, self.flags, self.changed)


def _run_direct(root: Path, changed: dict[str, str], plan: TestPlan, limits: Limits,
                relinker: _Relinker) -> TestRunReport:
    sandbox = make_sandbox_dir()
    try:
        copy_workspace(root, sandbox, changed=changed)
        for sub in (OBJ_DIR, BIN_DIR):
            (sandbox / sub).mkdir(parents=True, exist_ok=True)
        objects: dict[str, _Compiled] = {}
        programs = [_direct_program(root, sandbox, program, objects, limits, relinker) for program in plan.programs]
    finally:
        remove_sandbox_dir(sandbox)
    report = TestRunReport(kind="direct", command=plan.command, programs=programs,
                           timed_out=any(p.status == "timeout" for p in programs))
    if programs and all(p.status in ("build_failed", "not_run") for p in programs):
        first = next(p for p in programs if p.reason)
        report.not_run_reason = f"no test program could be built ({first.name}: {first.reason})"
    return report


def _text(result: RunResult, sandbox: Path) -> str:
    return (result.stdout + ("\n" if result.stdout and result.stderr else "") + result.stderr).replace(
        str(sandbox) + "/", "").replace(str(sandbox), ".")


def _compile(argv: list[str], sandbox: Path, limits: Limits) -> _Compiled:
    result = run_sandboxed(argv, sandbox, build_limits(limits))
    log = f"$ {' '.join(argv)}\n{_text(result, sandbox)}".rstrip()
    if result.killed_reason:
        log += f"\ncompiler stopped: {result.killed_reason}"
    return _Compiled(ok=result.ok, log=log, diagnostics=parse_diagnostics(result.stderr, sandbox))


def _first_error(compiled: _Compiled) -> str:
    error = next((d for d in compiled.diagnostics if d.severity == "error"), None)
    if error is not None:
        return f"{error.file}:{error.line}: {error.message}"
    lines = [line for line in compiled.log.splitlines()[1:] if line.strip()]
    return next((line for line in lines if "error" in line or "undefined reference" in line),
                lines[-1] if lines else "failed")


def _direct_program(root: Path, sandbox: Path, program: PlannedProgram, objects: dict[str, _Compiled],
                    limits: Limits, relinker: _Relinker) -> ProgramResult:
    started = time.monotonic()
    log: list[str] = []
    left_out: dict[str, str] = {}  # library unit -> why it was left out of the archive
    for attempt in range(MAX_RELINKS + 1):
        members: list[str] = []
        for argv in program.compile:
            obj = argv[-1]
            if obj not in objects:
                objects[obj] = _compile(rebase_flags(argv, root, sandbox), sandbox, limits)
            compiled = objects[obj]
            log.append(compiled.log)
            unit = argv[argv.index("-c") + 1]
            if not compiled.ok and unit != program.source and unit not in relinker.changed:
                # A library unit that does not build here (windows.h, a generated header) may not be needed:
                # the link says. A changed unit's error is always the verdict.
                left_out[unit] = f"{unit} did not compile: {_first_error(compiled)}"
                continue
            if not compiled.ok:
                return ProgramResult(name=program.name, status="build_failed", reason=f"{unit} did not compile: "
                                     f"{_first_error(compiled)}", output=condense("\n".join(log), OUTPUT_CHARS),
                                     diagnostics=compiled.diagnostics, seconds=round(time.monotonic() - started, 4))
            if unit != program.source:
                members.append(obj)
        if program.archive:
            (sandbox / program.archive).unlink(missing_ok=True)
            if members:
                archived = _compile(["ar", "rcs", program.archive, *members], sandbox, limits)
                log.append(archived.log)
        link = program.link if members or not program.archive else [a for a in program.link if a != program.archive]
        linked = _compile(link, sandbox, limits)
        log.append(linked.log)
        if linked.ok:
            break
        missing = sorted(set(_UNDEFINED.findall(linked.log)))
        replanned = relinker(program, missing) if missing and attempt < MAX_RELINKS else None
        if replanned is None:
            why = f"; left out: {'; '.join(left_out.values())}" if left_out else ""
            return ProgramResult(name=program.name, status="build_failed",
                                 reason=f"link failed: {_first_error(linked)}{why}",
                                 output=condense("\n".join(log), OUTPUT_CHARS), diagnostics=linked.diagnostics,
                                 seconds=round(time.monotonic() - started, 4))
        program = replanned
    binary = os.path.relpath(program.link[2], program.run_dir or ".")
    binary = binary if "/" in binary else f"./{binary}"
    run = run_sandboxed([binary], sandbox / program.run_dir, limits, sandbox_root=sandbox)
    text = _text(run, sandbox)
    # A program that ran is judged by what it printed: its build log (warnings the change adds or removes,
    # another length once condensed) is not compared with the baseline's.
    log += [f"$ {f'cd {program.run_dir} && ' if program.run_dir else ''}{binary}", text]
    passed, failed = cases(text)
    n_pass, n_fail = summary_counts(text, run.returncode)
    status: ProgramStatus = "passed"
    reason = ""
    if run.timed_out or run.killed_reason in ("timeout", "cpu_limit"):
        status, reason = "timeout", f"stopped by the time limit ({run.killed_reason})"
    elif not run.ok or failed or (n_fail and not run.ok):
        status = "failed"
        reason = (f"stopped: {run.killed_reason}" if run.killed_reason else
                  f"{len(failed)} case(s) failed: {', '.join(failed[:5])}" if failed else f"exit {run.returncode}")
    if status != "passed" and n_fail == 0:
        n_fail = 1
    if status == "passed":
        n_fail = 0
    return ProgramResult(name=program.name, status=status, cases_passed=passed, cases_failed=failed,
                         passed_count=n_pass, failed_count=n_fail, reason=reason,
                         output=condense("\n".join(x for x in log[-2:] if x), OUTPUT_CHARS),
                         seconds=round(time.monotonic() - started, 4))


# ---------------------------------------------------------------- the project's own build (trusted only)

@contextlib.contextmanager
def _project_sandbox(root: Path, changed: dict[str, str]) -> Iterator[tuple[Path, bool]]:
    """(sandbox dir, persistent?): the workspace's persistent copy when free, else a throwaway one."""
    with locked_build_dir(root) as persistent:
        if persistent is not None:
            sync_tree(root, persistent, changed)
            yield persistent, True
            return
    throwaway = make_sandbox_dir()
    try:
        sync_tree(root, throwaway, changed)
        yield throwaway, False
    finally:
        remove_sandbox_dir(throwaway)


def _run_project(root: Path, changed: dict[str, str], plan: TestPlan, limits: Limits) -> TestRunReport:
    with _project_sandbox(root, changed) as (sandbox, persistent):
        (sandbox / WORK_DIR).mkdir(exist_ok=True)
        report = _project_steps(sandbox, plan, limits)
        if persistent and any(p.reason.startswith("configure failed") for p in report.programs):
            # A half-configured build dir would be taken as configured next time.
            for build in (CMAKE_BUILD, MESON_BUILD):
                shutil.rmtree(sandbox / build, ignore_errors=True)
        return report


def _run_step(step: Step, sandbox: Path, limits: Limits) -> tuple[RunResult, str]:
    step_limits = limits if step.role == "test" else build_limits(limits)
    result = run_sandboxed(["sh", "-c", step.command], sandbox, step_limits)
    return result, _text(result, sandbox)


def _project_steps(sandbox: Path, plan: TestPlan, limits: Limits) -> TestRunReport:
    log: list[str] = []
    build_diags: list[Diagnostic] = []
    build_failed = False
    listed: dict[str, str] = {}
    test_run: RunResult | None = None
    test_text = ""
    for step in plan.steps:
        result, text = _run_step(step, sandbox, limits)
        if step.role != "list":
            log.append(f"$ {step.command}\n{text}".rstrip())
        if step.role == "configure" and not result.ok:
            reason = f"configure failed ({result.killed_reason or f'exit {result.returncode}'})"
            program = ProgramResult(name=f"{plan.kind} configure", status="build_failed", reason=reason,
                                    output=condense("\n".join(log), OUTPUT_CHARS),
                                    diagnostics=parse_diagnostics(result.stderr, sandbox), seconds=result.wall_s)
            return TestRunReport(kind=plan.kind, command=plan.command, programs=[program],
                                 not_run_reason=f"the project's {reason}: {_last_line(text)}")
        if step.role == "build":
            build_diags = parse_diagnostics(result.stdout + "\n" + result.stderr, sandbox)
            build_failed = not result.ok
        elif step.role == "list":
            listed = listed_tests(result.stdout) if result.ok else {}
        elif step.role == "test":
            test_run, test_text = result, text
    assert test_run is not None
    output = condense("\n".join(log), OUTPUT_CHARS)
    killed = test_run.timed_out or test_run.killed_reason in ("timeout", "cpu_limit")
    if plan.kind == "cmake":
        found = ctest_results(test_text)
    elif plan.kind == "meson":
        found = meson_results(test_text)
    else:
        found = automake_results(test_text)
        if not build_diags:
            build_diags = parse_diagnostics(test_run.stdout + "\n" + test_run.stderr, sandbox)
    stale = _stale_executables(sandbox, plan.kind, listed, limits) if build_failed else set()
    programs = _runner_programs(found, list(listed), killed, build_failed, build_diags, output, stale)
    if not programs:  # the runner names no tests: the whole command is one program
        programs = [_whole_command(plan, test_run, test_text, killed, build_failed, build_diags, output)]
    report = TestRunReport(kind=plan.kind, command=plan.command, programs=programs, timed_out=killed)
    if all(p.status in ("build_failed", "not_run") for p in programs):
        first = programs[0]
        report.not_run_reason = f"the project's tests did not build ({first.name}: {first.reason})"
    return report


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    error = next((line for line in lines if "error" in line.lower()), None)
    return error or (lines[-1] if lines else "no output")


def _stale_executables(sandbox: Path, kind: str, listed: dict[str, str], limits: Limits) -> set[str]:
    """After a failed build, the tests whose executable is out of date (its build failed, so what ran was an
    older binary from an earlier run): ninja's dry run has work to do for it. Without ninja or without the
    executables' paths, every test counts as stale: a result from an old binary must not pass for the change."""
    build = sandbox / (CMAKE_BUILD if kind == "cmake" else MESON_BUILD)
    if kind not in ("cmake", "meson") or not (build / "build.ninja").is_file() or shutil.which("ninja") is None:
        return set(listed) if kind in ("cmake", "meson") else set()
    checks = []
    for name, exe in listed.items():
        target = Path(exe).relative_to(build).as_posix() if exe and Path(exe).is_relative_to(build) else ""
        if not target:
            continue
        checks.append(f"if ninja -C {build} -n -- {shlex.quote(target)} 2>&1 | grep -q 'no work to do'; "
                      f"then :; else echo STALE {shlex.quote(name)}; fi")
    if not checks:
        return set()
    result = run_sandboxed(["sh", "-c", "; ".join(checks)], sandbox, build_limits(limits))
    return {line[len("STALE "):] for line in result.stdout.splitlines() if line.startswith("STALE ")}


def _runner_programs(found: list[RunnerTest], names: list[str], killed: bool, build_failed: bool,
                     diags: list[Diagnostic], output: str, stale: set[str]) -> list[ProgramResult]:
    by_name = {t.name: t for t in found}
    programs = []
    for name in [*names, *(t.name for t in found if t.name not in names)]:
        test = by_name.get(name)
        if name in stale:
            programs.append(ProgramResult(
                name=name, status="build_failed", reason="its executable did not build (the project build failed)",
                failed_count=1, output=output, diagnostics=[d for d in diags if d.severity == "error"]))
            continue
        if test is None:
            status: ProgramStatus = "timeout" if killed else ("build_failed" if build_failed else "not_run")
            reason = {"timeout": "the test run was stopped by the time limit before it finished",
                      "build_failed": "the project build failed", "not_run": "the runner did not run it"}[status]
        else:
            status = test.status
            reason = "" if status == "passed" else f"{test.detail}" + (
                " (the project build failed)" if status == "build_failed" or build_failed else "")
        programs.append(ProgramResult(
            name=name, status=status, reason=reason, passed_count=int(status == "passed"),
            failed_count=int(status in ("failed", "timeout")),
            output="" if status == "passed" else output,
            diagnostics=[d for d in diags if d.severity == "error"] if status == "build_failed" else []))
    return programs


def _whole_command(plan: TestPlan, run: RunResult, text: str, killed: bool, build_failed: bool,
                   diags: list[Diagnostic], output: str) -> ProgramResult:
    n_pass, n_fail = summary_counts(text, run.returncode)
    passed, failed = cases(text)
    errors = [d for d in diags if d.severity == "error"]
    status: ProgramStatus
    if killed:
        status, reason = "timeout", f"stopped by the time limit ({run.killed_reason})"
    elif run.ok and n_fail == 0 and not failed:
        status, reason = "passed", ""
    elif errors or (build_failed and not run.ok):
        status, reason = "build_failed", f"build failed: {errors[0].file}:{errors[0].line}: {errors[0].message}" \
            if errors else "build failed"
    else:
        status, reason = "failed", f"exit {run.returncode}" if not failed else f"{len(failed)} case(s) failed"
    name = next((s.command for s in plan.steps if s.role == "test"), plan.command)
    return ProgramResult(name=name, status=status, cases_passed=passed, cases_failed=failed,
                         passed_count=n_pass if status == "passed" else n_pass,
                         failed_count=0 if status == "passed" else max(n_fail, 1), reason=reason, output=output,
                         diagnostics=errors, seconds=run.wall_s)
