"""Is a proposed change valid? The one check every flow's validation step runs (MoMA stage 3).

In order, each step only when asked for: the edited file parses (no syntax error it did not have), `function`
keeps its signature, every changed translation unit compiles in a sandboxed copy of the workspace (with a header
and its source changed together; a `.c` another unit `#include`s inside that unit), no new warnings, and the
project's tests pass against the change, judged against the same tests on the unchanged tree (see `baseline`).
The first failure ends the check; its `failure` text is what the next attempt's prompt gets: only failures the
change caused. gcc, not tree-sitter, is the judge of syntax: where gcc cannot check the unit, the tests decide.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import msgspec

from cra.pipeline.sandbox import testrun
from cra.pipeline.sandbox.baseline import TestVerdict, baseline_report, judge, program_of
from cra.pipeline.sandbox.condense import condense
from cra.pipeline.sandbox.diagnostics import Diagnostic, new_errors, new_warnings, parse_diagnostics
from cra.pipeline.sandbox.discover_units import UNIT_SUFFIXES, including_units, is_test_file
from cra.pipeline.sandbox.flags import DEFAULT_FLAGS, flags_for, outside_paths, rebase_flags, restrict_untrusted
from cra.pipeline.sandbox.frameworks import UntrustedCommand
from cra.pipeline.sandbox.limits import Limits, RunResult
from cra.pipeline.sandbox.reach import programs_reaching
from cra.pipeline.sandbox.runner import make_sandbox_dir, remove_sandbox_dir, run_sandboxed
from cra.pipeline.sandbox.test_report import TestRunReport
from cra.pipeline.sandbox.validate import COMPILE_LIMITS, WORK_DIR, CompileResult, compile_unit
from cra.pipeline.sandbox.workspace_copy import copy_workspace, relative_inside

# timeout: the change's tests stopped at the time limit (an endless loop) where the unchanged tree's did not.
CheckKind = Literal["ok", "syntax", "signature", "compile", "warnings", "test", "timeout"]


class CheckOptions(msgspec.Struct, frozen=True, kw_only=True):
    """How changes are built and tested (the `[validation]` settings and the workspace's trust)."""

    compiler: str = "gcc"
    flags: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_FLAGS))  # when no compile_commands.json
    limits: Limits = COMPILE_LIMITS
    test_command: str | None = None
    trusted: bool = False  # only a trusted workspace runs its own build/test command


class ChangeCheck(msgspec.Struct, kw_only=True):
    """The verdict on one change. `kind` names the check that failed ("ok" when none did); `failure` is the
    condensed text for the next attempt's prompt; `diagnostics` the compiler's or the tests' findings."""

    ok: bool
    kind: CheckKind
    message: str
    parsed: bool | None = None
    compiled: bool | None = None
    tests_passed: bool | None = None
    failure: str = ""
    diagnostics: list[Diagnostic] = []
    diagnostics_source: Literal["compile", "tests"] = "compile"
    tests_not_run: str = ""  # why the project's tests could not judge the change ("" when they did, or weren't asked)
    tests: TestVerdict | None = None  # the baseline-aware test verdict, when the tests ran
    # Why gcc could not check a changed unit ("" when it could): the unchanged unit fails in the sandbox too (say,
    # without a header the project's build generates), so only the tests can judge the change.
    compile_unchecked: str = ""
    tests_built_by: str = ""  # the test run's kind: "direct" (cra's own gcc commands), "cmake", "make", ... or ""


def check_change(root: str | Path, path: str, new_text: str, options: CheckOptions | None = None, *,
                 old_text: str | None = None, function: str | None = None, extra: dict[str, str] | None = None,
                 allow_new_warnings: bool = False, run_tests: bool = False,
                 baseline: dict[str, str] | None = None) -> ChangeCheck:
    """Check `path` (workspace-relative) changed to `new_text`, with the other files of `extra` changed with it.

    old_text: the text before the change; given, the new text must not add syntax errors and `function` (when
    named) must keep its signature. allow_new_warnings: warnings the change adds do not fail it. run_tests: run
    the project's tests against the change after it compiled, and judge them against the unchanged tree's (the
    files on disk, with `baseline` texts in place of theirs: an editor's unsaved buffer); `function` names the
    target whose tests should pass. When no test can run on the unchanged tree the change passes with
    `tests_not_run` saying why.
    """
    options = options or CheckOptions()
    syntax_failure: ChangeCheck | None = None
    if old_text is not None:
        failed = _parse_check(path, old_text, new_text, function)
        if failed is not None and failed.kind != "syntax":
            return failed
        # tree-sitter sees no macro expansion: a "syntax error" the compiler accepts is not one.
        syntax_failure = failed
    changed = {path: new_text, **(extra or {})}
    units = [p for p in changed if p.endswith(".c")] or [path]
    unchecked: list[str] = []  # units that do not compile in the sandbox before the change either
    built_as: list[str] = []  # "unit.c as part of includer.c": units compiled inside the file including them
    for unit in units:
        result, where = compile_where_built(root, unit, changed, compiler=options.compiler,
                                            default_flags=options.flags, limits=options.limits,
                                            trusted=options.trusted)
        rel = relative_inside(Path(root).resolve(), unit).as_posix()
        if where != rel:
            built_as.append(f"{rel} as part of {where}")
        if _unchecked(result):
            unchecked.append(f"{where}: {result.baseline_errors[0].render()}")
            continue
        if not result.ok and syntax_failure is not None:  # tree-sitter and the compiler agree
            syntax_failure.failure = "\n".join(x for x in (syntax_failure.failure, condense(result.stderr, 800)) if x)
            syntax_failure.compiled = False
            return syntax_failure
        if not result.ok:
            errors = result.new_errors or [d for d in result.diagnostics if d.severity == "error"] or \
                result.diagnostics
            summary = "; ".join(d.render() for d in errors[:3]) or condense(result.stderr, 400) or "compiler failed"
            failure = "\n".join(d.render() for d in errors[:20]) if result.baseline_errors else \
                condense(result.stderr, 1200)
            return ChangeCheck(ok=False, kind="compile", parsed=True, compiled=False,
                               message=f"does not compile: {summary}",
                               failure=failure or summary, diagnostics=errors)
        if result.new_warnings and not allow_new_warnings:
            summary = "; ".join(d.render() for d in result.new_warnings[:3])
            return ChangeCheck(ok=False, kind="warnings", parsed=True, compiled=True,
                               message=f"compiles with new warnings: {summary}", failure=summary,
                               diagnostics=result.new_warnings)
    # gcc is the judge of syntax; where it cannot look (the unchanged unit fails too, e.g. without a header the
    # project's build generates), tree-sitter's error is only a hint (a macro it cannot expand, as in
    # `if UNLIKELY (x)`): said, and left to the project's tests.
    hint = ""
    if unchecked and syntax_failure is not None:  # its message ends "(syntax error on line N)"
        hint = f"; tree-sitter's {syntax_failure.message.partition('(')[2].rstrip(')')} is left to the tests"
    parsed = None if hint else True
    compile_note = ("compile not checked (the unchanged code does not compile in cra's sandbox either: "
                    f"{condense('; '.join(unchecked), 300)}{hint})") if unchecked else ""
    if not run_tests:
        if compile_note:
            return ChangeCheck(ok=True, kind="ok", parsed=parsed, compiled=None, message=compile_note,
                               compile_unchecked="; ".join(unchecked))
        where = f" ({'; '.join(built_as)})" if built_as else ""
        return ChangeCheck(ok=True, kind="ok", parsed=True, compiled=True,
                           message=f"parses and compiles{where} without new warnings")
    build = restrict_untrusted(options.compiler, flags_for(root, units[0], options.flags, trusted=options.trusted).flags,
                               root, trusted=options.trusted)
    options = msgspec.structs.replace(options, compiler=build.compiler)
    check = _test_check(root, changed, options, flags=build.flags, unchanged=baseline, target=function)
    if built_as and not compile_note:
        check.message = check.message.replace("compiled; ", f"compiled ({'; '.join(built_as)}); ", 1)
    if compile_note and check.compiled:  # say what cra itself could not check
        # Only the project's own build (trusted) compiled the unit cra could not: cra's direct test builds use
        # the same flags, so no direct-built test program that ran can have held it.
        built = check.tests_passed is not None and check.tests_built_by not in ("", "direct", "none")
        check.compiled = check.compiled if built else None
        check.parsed = check.parsed if built else parsed
        check.message = check.message.replace("compiled; ", f"{compile_note}; ", 1)
    check.compile_unchecked = "; ".join(unchecked)
    return check


def _unchecked(result: CompileResult) -> bool:
    """The unit does not compile in the sandbox before the change either, and the change adds no error: gcc
    cannot judge it there."""
    return not result.ok and bool(result.baseline_errors) and not result.new_errors and result.killed_reason is None


def compile_where_built(root: str | Path, unit: str, changed: dict[str, str], *, compiler: str,
                        default_flags: list[str], limits: Limits, trusted: bool = False) -> tuple[CompileResult, str]:
    """Compile `unit` (with every file of `changed` in place) the way the project compiles it, and say which file
    was compiled: a `.c` that another library unit `#include`s (lzlib.c includes encoder_base.c) is not a
    translation unit of its own, so the outermost unit including it is compiled instead. When that cannot be
    checked (its unchanged text fails too), the unit alone, then a test program including it, are tried."""
    root_p = Path(root).resolve()
    rel = relative_inside(root_p, unit).as_posix()
    includers: list[str] = []
    if Path(rel).suffix in UNIT_SUFFIXES:
        overrides = {relative_inside(root_p, p).as_posix(): text for p, text in changed.items()}
        includers = including_units(root_p, rel, overrides)
    library = [p for p in includers if not is_test_file(p)]
    tests = [p for p in includers if is_test_file(p)]
    first: tuple[CompileResult, str] | None = None
    for where in [*library[:1], rel, *tests[:1]]:
        result = compile_changes(root_p, where, changed, compiler=compiler, default_flags=default_flags,
                                 limits=limits, trusted=trusted)
        first = first or (result, where)
        if not _unchecked(result):
            return result, where
    assert first is not None
    return first


def _test_check(root: str | Path, changed: dict[str, str], options: CheckOptions, *, flags: list[str],
                unchanged: dict[str, str] | None, target: str | None) -> ChangeCheck:
    """The project's tests on the change, judged against the same tests on the unchanged tree (cached per tree
    state): only what the change broke (or, for tests of `target`, did not fix) fails it."""
    command = options.test_command or None
    root_p = Path(root).resolve()
    changed = {relative_inside(root_p, p).as_posix(): text for p, text in changed.items()}
    if unchanged is not None:
        unchanged = {relative_inside(root_p, p).as_posix(): text for p, text in unchanged.items()}
    try:
        before = baseline_report(root, unchanged=unchanged, trusted=options.trusted, test_command=command,
                                 compiler=options.compiler, flags=flags, limits=options.limits)
        after = testrun.run_tests(root, changed, trusted=options.trusted, test_command=command,
                                  compiler=options.compiler, flags=flags, limits=options.limits)
    except UntrustedCommand as exc:  # a configured command, untrusted: never run
        return _not_run(str(exc))
    verdict = judge(before, after, target=target)
    if verdict.status == "passed" and target:  # only then can what reaches the target change it: index once here
        reaching = programs_reaching(root_p, [p.name for p in after.programs], target)
        verdict = judge(before, after, target=target, reaching=reaching)
    check = _verdict_check(verdict, after)
    check.tests_built_by = after.kind
    return check


def _verdict_check(verdict: TestVerdict, after: TestRunReport) -> ChangeCheck:
    if verdict.status == "no_tests":
        return ChangeCheck(ok=True, kind="ok", parsed=True, compiled=True, message="compiled; no tests found",
                           tests=verdict)
    if verdict.status == "not_run":
        return _not_run(verdict.not_run_reason, verdict)
    if verdict.status == "inconclusive":  # they ran, but pass neither before nor after: offered, not confirmed
        return ChangeCheck(ok=True, kind="ok", parsed=True, compiled=True, message=f"compiled; {verdict.message}",
                           tests_not_run=verdict.not_run_reason, tests=verdict)
    diagnostics = [d for p in after.programs if p.name in _programs(verdict.caused) for d in p.diagnostics]
    if verdict.status in ("failed", "timeout"):
        return ChangeCheck(ok=False, kind="timeout" if verdict.status == "timeout" else "test", parsed=True,
                           compiled=True, tests_passed=False, message=f"compiled; {verdict.message}",
                           failure=verdict.failure, diagnostics=diagnostics, diagnostics_source="tests",
                           tests=verdict)
    # How the tests ran is part of the verdict: a direct gcc build, or (trusted workspaces only) the project's own.
    return ChangeCheck(ok=True, kind="ok", parsed=True, compiled=True, tests_passed=True,
                       message=f"compiled; {verdict.message}", tests=verdict)


def _not_run(reason: str, verdict: TestVerdict | None = None) -> ChangeCheck:
    """Nothing could judge the change: it compiled, so it is still offered; no adjustment round can help."""
    return ChangeCheck(ok=True, kind="ok", parsed=True, compiled=True, message=f"compiled; tests not run: {reason}",
                       tests_not_run=reason, tests=verdict)


def _programs(names: list[str]) -> set[str]:
    return {program_of(name) for name in names}


def _parse_check(path: str, old_text: str, new_text: str, function: str | None) -> ChangeCheck | None:
    from cra.pipeline.context import parse_source
    from cra.pipeline.context.symbols import FUNCTION

    old_index = parse_source(path, old_text.encode("utf-8", errors="surrogateescape"))
    new_index = parse_source(path, new_text.encode("utf-8", errors="surrogateescape"))
    if len(new_index.error_lines) > len(old_index.error_lines):
        fresh = sorted(set(new_index.error_lines) - set(old_index.error_lines)) or new_index.error_lines
        message = f"the edited file does not parse (syntax error on line {fresh[0] + 1})"
        return ChangeCheck(ok=False, kind="syntax", parsed=False, message=message, failure=message)
    if function is not None:
        before = [s.signature for s in old_index.symbols if s.name == function and s.kind == FUNCTION]
        after = [s.signature for s in new_index.symbols if s.name == function and s.kind == FUNCTION]
        if before and after != before[:1]:
            message = (f"the signature of {function} changed (was `{before[0]}`, now "
                       f"`{after[0] if after else 'missing'}`); keep it exactly")
            return ChangeCheck(ok=False, kind="signature", parsed=True, message=message, failure=message)
    return None


def compile_changes(root: str | Path, unit: str, changed: dict[str, str], *, compiler: str, default_flags: list[str],
                    limits: Limits, trusted: bool = False) -> CompileResult:
    """Compile `unit` after writing every file of `changed` (a header and its source together) in a sandboxed
    copy; warnings are compared with the unchanged tree so only new ones count."""
    started = time.monotonic()
    root_p = Path(root).resolve()
    rel = relative_inside(root_p, unit)
    if len(changed) == 1 and relative_inside(root_p, next(iter(changed))) == rel:
        return compile_unit(root_p, rel, next(iter(changed.values())), compiler=compiler,
                            flags=flags_for(root_p, rel, default_flags, trusted=trusted).flags, limits=limits,
                            trusted=trusted)
    # Untrusted: the default compiler and only safe flags (a workspace's config must not run programs).
    build = restrict_untrusted(compiler, flags_for(root_p, rel, default_flags, trusted=trusted).flags, root_p,
                               trusted=trusted)
    compiler, flags = build.compiler, build.flags
    readonly = outside_paths(flags, root_p) if trusted else []
    runs: list[tuple[RunResult | None, list[Diagnostic], str]] = []
    for edits in ({}, changed):
        sandbox = make_sandbox_dir()
        try:
            copy_workspace(root_p, sandbox, changed=edits)
            (sandbox / WORK_DIR).mkdir(exist_ok=True)
            if not (sandbox / rel).is_file():
                runs.append((None, [], ""))
                continue
            argv = [compiler, *rebase_flags(flags, root_p, sandbox), "-fdiagnostics-color=never", "-fsyntax-only",
                    rel.as_posix()]
            result = run_sandboxed(argv, sandbox, limits, readonly_paths=readonly)
            runs.append((result, parse_diagnostics(result.stderr, sandbox),
                         result.stderr.replace(str(sandbox) + "/", "")))
        finally:
            remove_sandbox_dir(sandbox)
    (_, before, _), (after_run, after, stderr) = runs
    ok = after_run is not None and after_run.returncode == 0 and after_run.killed_reason is None and \
        not any(d.severity == "error" for d in after)
    return CompileResult(ok=ok, diagnostics=after, new_warnings=new_warnings(before, after), stderr=stderr,
                         seconds=round(time.monotonic() - started, 4), flags=flags,
                         killed_reason=after_run.killed_reason if after_run is not None else "unit missing",
                         new_errors=new_errors(before, after),
                         baseline_errors=[d for d in before if d.severity == "error"])
