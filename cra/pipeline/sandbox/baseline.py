"""Baseline-aware test verdicts: run the tests on the unchanged tree once per tree state, then judge a change by
the difference (SWE-bench style: what passed before must still pass, what failed because of the stub should now
pass, and what failed before the change is never the change's fault).

`baseline_report` caches the unchanged tree's TestRunReport by a content hash of the files the sandbox copy would
hold plus the run's options, in memory and in a small JSON file under the user's cache, so a second `cra run` on
the same tree does not pay again. `judge` is a pure function of two reports.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Literal

import msgspec

from cra.pipeline.sandbox import testrun
from cra.pipeline.sandbox.condense import condense
from cra.pipeline.sandbox.limits import Limits
from cra.pipeline.sandbox.test_report import ProgramResult, TestRunReport
from cra.pipeline.sandbox.workspace_copy import relative_inside, workspace_files

CACHE_VERSION = 1  # bump when TestRunReport's meaning changes: older files are then ignored
MAX_CACHE_FILES = 256
MAX_MEMORY_REPORTS = 64
FAILURE_CHARS = 1200  # of the change's failures, for the next attempt's prompt
RAN = ("passed", "failed", "timeout")

# Lines of test output that report a failure (assertions, framework summaries, crashes, build errors).
_FAILURE_LINE = re.compile(
    r"Assertion .* failed|:FAIL\b|\bFAIL(ED)?\b|\bfail(ed|ure)?\b|\berror\b|Segmentation fault|Aborted|"
    r"core dumped|\bstopped\b|\*\*\*|undefined reference|multiple definition", re.IGNORECASE)
# What varies between two runs of the same failing test: addresses, timings, clock times, dates, pids and seeds
# (long numbers), temp paths. Short numbers stay: "case 3 failed" and "case 4 failed" are different failures.
_NOISE = re.compile(r"0x[0-9a-fA-F]+|\d+\.\d+|\d+(?::\d+)+|\d{4}-\d\d-\d\d|\d{5,}|/tmp/[^\s:]+")

TestRunner = Callable[..., TestRunReport]
# "inconclusive": the tests ran but nothing passes, before or after the change, and no failure names the target
# (a suite that fails on the unchanged tree for other reasons): nothing is blamed, and nothing is shown passing.
VerdictStatus = Literal["passed", "failed", "timeout", "inconclusive", "not_run", "no_tests"]


class TestVerdict(msgspec.Struct, kw_only=True):
    """A change judged against the baseline. Names are test programs, or `program::case` where the runner reports
    cases. `caused` lists everything the change is blamed for (new failures, new timeouts, and tests of the target
    that failed at baseline and still fail); `failure` holds only their output."""

    status: VerdictStatus
    message: str  # one readable line, e.g. "tests passed (gcc (direct build): 2 programs ran; fixed: ...)"
    command: str = ""
    ran: list[str] = []  # programs that built and ran after the change
    failed_before: list[str] = []
    failed_after: list[str] = []
    new_failures: list[str] = []  # passed (or built) at baseline, fail (or stop building) after
    new_timeouts: list[str] = []  # did not time out at baseline, do after: an infinite loop in the change
    unfixed: list[str] = []  # failed at baseline, still fail, and the failure names the target
    fixed: list[str] = []  # failed at baseline, pass after: the stub's victims
    # failed at baseline on the target, now fail past it on a check the target's failure kept from running
    revealed: list[str] = []
    not_run: dict[str, str] = {}  # program -> why it did not run (at baseline or after)
    not_run_reason: str = ""  # set when status is "not_run" or "inconclusive": why nothing could be judged
    failure: str = ""

    @property
    def caused(self) -> list[str]:
        return [*self.new_timeouts, *self.new_failures, *self.unfixed]

    @property
    def baseline_failures(self) -> list[str]:
        """Failures present at baseline that the change is not blamed for."""
        return [n for n in self.failed_before if n not in self.caused and n not in self.fixed]


# ---- judging ----------------------------------------------------------------------------------------------------
def _mentions(text: str, target: str | None) -> bool:
    # Identifier boundaries but not underscores: `test_add` and `add_two` name `add`; `address` does not.
    return bool(target) and re.search(rf"(?<![A-Za-z0-9]){re.escape(target or '')}(?![A-Za-z0-9])", text) is not None


def _failure_lines(output: str) -> list[str]:
    # Not the commands echoed, nor condense's own summary line ("[condensed: 120 lines, 0 error lines, ...]"): its
    # counts change whenever the change alters a warning, which would make the same failure look new.
    return [line.strip() for line in output.splitlines() if line.strip() and _FAILURE_LINE.search(line)
            and not line.startswith(("$ ", "[condensed:"))]


def _normal(line: str) -> str:
    return _NOISE.sub("#", line)


class _Judged:
    def __init__(self) -> None:
        self.new_failures: list[str] = []
        self.new_timeouts: list[str] = []
        self.unfixed: list[str] = []
        self.fixed: list[str] = []
        self.revealed: list[str] = []
        self.failed_before: list[str] = []
        self.failed_after: list[str] = []
        self.failure: list[str] = []  # the change's failures' output, per program


def _judge_program(name: str, before: ProgramResult, after: ProgramResult | None, after_report: TestRunReport,
                   target: str | None, out: _Judged) -> None:
    """One program that ran at baseline (passed, failed or timed out there)."""
    if before.status != "passed":
        out.failed_before += [f"{name}::{c}" for c in before.cases_failed] or [name]
    if after is None or after.status == "not_run":
        why = (after.reason if after is not None else "") or after_report.not_run_reason or "it did not run"
        if after_report.timed_out:
            out.new_timeouts.append(name)
            out.failure.append(f"{name}: not run after the change, the test run ran out of time ({why})")
        else:
            out.new_failures.append(name)
            out.failure.append(f"{name}: ran at baseline but not after the change: {why}")
        return
    if after.status != "passed":
        out.failed_after += [f"{name}::{c}" for c in after.cases_failed] or [name]
    if after.status == "timeout" and before.status != "timeout":
        out.new_timeouts.append(name)
        out.failure.append(f"{name}: did not finish within the time limit after the change (an endless loop?)\n"
                           + condense(after.output, FAILURE_CHARS))
        return
    if after.status == "build_failed":
        out.new_failures.append(name)
        out.failure.append(f"{name}: built at baseline, does not build after the change: {after.reason}\n"
                           + condense(after.output, FAILURE_CHARS))
        return
    if before.status == "passed":
        if after.status == "passed":
            return
        out.new_failures.append(name)  # it had no failure before: all of its output is the change's
        out.failure.append(f"{name}: passed at baseline, fails after the change"
                           + (f": {after.reason}" if after.reason else "") + "\n" + condense(after.output, FAILURE_CHARS))
        return
    # It failed (or timed out) at baseline.
    if after.status == "passed":
        out.fixed.append(name)
        return
    if before.cases_passed or before.cases_failed or after.cases_passed or after.cases_failed:
        _judge_cases(name, before, after, target, out)
        return
    # No per-case report: compare the failure lines. A line the baseline did not have is the change's; one that
    # names the target and was there before is a test of the target the change did not fix.
    before_lines = _failure_lines(before.output)
    seen = {_normal(line) for line in before_lines}
    lines = _failure_lines(after.output)
    fresh = [line for line in lines if _normal(line) not in seen]
    about_target = [line for line in lines if _mentions(line, target) and line not in fresh]
    if fresh and not about_target and not any(_mentions(line, target) for line in fresh) and \
            any(_mentions(line, target) for line in before_lines):
        # The target's failure is gone and the program now stops further on: a C test usually ends at its first
        # failed assert, so the baseline never reached this check. Not the change's; listed, not blamed.
        out.revealed.append(name)
        return
    if fresh:
        out.new_failures.append(name)
    elif about_target:
        out.unfixed.append(name)
    if fresh or about_target:
        out.failure.append(f"{name}: " + ("new failures after the change" if fresh else
                                          f"still fails on {target} after the change") + ":\n"
                           + condense("\n".join(fresh + about_target), FAILURE_CHARS))


def _judge_cases(name: str, before: ProgramResult, after: ProgramResult, target: str | None, out: _Judged) -> None:
    new = [c for c in after.cases_failed if c in before.cases_passed]
    unfixed = [c for c in after.cases_failed if c not in new and _mentions(c, target)]
    out.new_failures += [f"{name}::{c}" for c in new]
    out.unfixed += [f"{name}::{c}" for c in unfixed]
    out.fixed += [f"{name}::{c}" for c in before.cases_failed if c in after.cases_passed]
    blamed = new + unfixed
    if not blamed:
        return
    lines = [line for line in after.output.splitlines() if any(c in line for c in blamed)]
    out.failure.append(f"{name}: " + ", ".join(blamed) + " fail after the change"
                       + (f" (failing at baseline too: {', '.join(unfixed)})" if unfixed else "") + ":\n"
                       + condense("\n".join(lines) or after.reason, FAILURE_CHARS))


def judge(baseline: TestRunReport, after: TestRunReport, *, target: str | None = None,
          reaching: Collection[str] | None = None) -> TestVerdict:
    """The change's verdict: `after` (the tests with the change) against `baseline` (the unchanged tree).

    target: the function the change is about; a test that failed at baseline and still fails counts against the
    change only when its failure (or its case name) names the target.
    reaching: the programs whose code can run the target (see `reach.programs_reaching`); when some ran and every
    one of them fails before and after, the verdict is "inconclusive" however many others pass."""
    command = after.command or baseline.command
    before_by_name = baseline.by_name()
    after_by_name = after.by_name()
    not_run = {p.name: f"not run at baseline: {p.reason or p.status.replace('_', ' ')}"
               for p in baseline.programs if p.status not in RAN}
    runnable = [p for p in baseline.programs if p.status in RAN]
    if not runnable:
        if not baseline.programs and baseline.kind == "none":
            return TestVerdict(status="no_tests", message="no tests found", command=command,
                               not_run_reason=baseline.not_run_reason)
        reason = baseline.not_run_reason or _unrunnable_reason(baseline)
        return TestVerdict(status="not_run", message=f"tests not run: {reason}", command=command, not_run=not_run,
                           not_run_reason=reason)
    out = _Judged()
    for before in runnable:
        _judge_program(before.name, before, after_by_name.get(before.name), after, target, out)
    for p in after.programs:  # a program unknown at baseline (or unrunnable there) is not judged, only listed
        if p.name not in before_by_name or p.name in not_run:
            if p.status == "passed" and p.name in not_run:
                out.fixed.append(p.name)
            elif p.status != "passed":
                out.failed_after.append(p.name)
    ran = [p.name for p in after.programs if p.status in RAN]
    verdict = TestVerdict(status="passed", message="", command=command, ran=ran, failed_before=out.failed_before,
                          failed_after=out.failed_after, new_failures=out.new_failures, new_timeouts=out.new_timeouts,
                          unfixed=out.unfixed, fixed=out.fixed, revealed=out.revealed, not_run=not_run,
                          failure=condense("\n\n".join(out.failure), FAILURE_CHARS) if out.failure else "")
    verdict.status = "timeout" if out.new_timeouts else "failed" if (out.new_failures or out.unfixed) else "passed"
    if verdict.status == "passed" and not (out.fixed or out.revealed or _any_pass(after)):
        verdict.status = "inconclusive"
        verdict.not_run_reason = _inconclusive_reason(verdict, target)
    elif verdict.status == "passed" and target and reaching:
        judged = [n for n in ran if n in reaching]
        if judged and not _any_pass(after, judged) and not any(program_of(n) in judged for n in out.fixed + out.revealed):
            verdict.status = "inconclusive"
            verdict.not_run_reason = (f"the tests that can run {target} ({_names(judged)}) fail on the unchanged tree "
                                      "too, the same way: they cannot judge the change")
    verdict.message = _message(verdict, total=len(after.programs) or len(baseline.programs))
    return verdict


def _any_pass(report: TestRunReport, names: Collection[str] | None = None) -> bool:
    """Some test program (of `names`, when given), or some case of one, passes in `report`."""
    return any(p.status == "passed" or p.cases_passed for p in report.programs if names is None or p.name in names)


def program_of(name: str) -> str:
    """The program a verdict's name is about: `suite::test_len` → `suite`."""
    return name.split("::", 1)[0]


def _inconclusive_reason(v: TestVerdict, target: str | None) -> str:
    names = _names(v.failed_after or v.ran)
    about = f", and no failure names {target}" if target else ""
    return f"every test that ran fails on the unchanged tree too ({names}){about}: they cannot judge the change"


def _unrunnable_reason(report: TestRunReport) -> str:
    reasons = [f"{p.name}: {p.reason or p.status.replace('_', ' ')}" for p in report.programs[:3]]
    more = f" (and {len(report.programs) - 3} more)" if len(report.programs) > 3 else ""
    return "no test program builds or runs on the unchanged tree (" + "; ".join(reasons) + more + ")"


def _names(items: list[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _message(v: TestVerdict, *, total: int) -> str:
    parts = [f"{len(v.ran)} of {total} test programs ran"]
    if v.new_timeouts:
        parts.append(f"timed out after the change: {_names(v.new_timeouts)}")
    if v.new_failures:
        parts.append(f"failing after the change: {_names(v.new_failures)}")
    if v.unfixed:
        parts.append(f"still failing on the target: {_names(v.unfixed)}")
    if v.fixed:
        parts.append(f"fixed: {_names(v.fixed)}")
    if v.revealed:
        parts.append(f"past the target's fixed failure, failing on an earlier-hidden check, not counted: "
                     f"{_names(v.revealed)}")
    others = [n for n in v.baseline_failures if n not in v.revealed]
    if others:
        parts.append(f"failing before the change too, not counted: {_names(others)}")
    if v.not_run:
        parts.append(f"not run: {_names([f'{k} ({why})' for k, why in v.not_run.items()], 2)}")
    head = {"passed": "tests passed", "failed": "tests failed", "timeout": "timeout",
            "inconclusive": f"tests inconclusive: {v.not_run_reason}"}[v.status]
    return f"{head} ({v.command}: " + "; ".join(parts) + ")"


# ---- the baseline, cached by tree state --------------------------------------------------------------------------
class _CacheFile(msgspec.Struct, kw_only=True):
    version: int
    key: str
    report: TestRunReport


_memory: dict[str, TestRunReport] = {}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def cache_dir() -> Path:
    """Where baseline reports are kept between runs: $CRA_BASELINE_CACHE, else cra's folder in the user cache."""
    if env := os.environ.get("CRA_BASELINE_CACHE"):
        return Path(env)
    from cra.pipeline.models.registry import cra_cache_root

    return cra_cache_root() / "baseline"


def clear_memory_cache() -> None:
    """Forget the reports held in memory (the on-disk cache stays)."""
    with _locks_guard:
        _memory.clear()


def tree_key(root: str | Path, unchanged: dict[str, str] | None = None, **options: object) -> str:
    """A content hash of what the sandbox copy of `root` would hold (the files copy_workspace copies, with
    `unchanged` texts in place of theirs) and of the run's options."""
    root_p = Path(root).resolve()
    overrides = {relative_inside(root_p, p).as_posix(): text for p, text in (unchanged or {}).items()}
    h = hashlib.blake2b(digest_size=20)
    h.update(msgspec.json.encode({"v": CACHE_VERSION, "root": str(root_p), "options": options}))
    for rel, data in _tree_files(root_p, overrides):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _tree_files(root: Path, overrides: dict[str, str]) -> list[tuple[str, bytes]]:
    files: dict[str, bytes] = {}
    for rel, path in workspace_files(root).items():
        try:
            files[rel] = path.read_bytes()
        except OSError:
            continue  # removed while we walk, or unreadable: the copy skips it too
    for rel, text in overrides.items():
        files[rel] = text.encode("utf-8", "surrogateescape")
    return sorted(files.items())


def baseline_report(root: str | Path, *, trusted: bool, test_command: str | None = None, compiler: str = "gcc",
                    flags: list[str] | None = None, limits: Limits | None = None,
                    unchanged: dict[str, str] | None = None, runner: TestRunner | None = None) -> TestRunReport:
    """The tests' report on the unchanged tree (with `unchanged` texts in place of the files on disk: an editor's
    unsaved buffer), computed once per tree state and options.

    runner: what runs the tests (default: testrun.run_tests); it gets `root` and `unchanged` as the changed
    files, plus the options."""
    runner = runner or testrun.run_tests  # looked up now: a test may wrap it
    limits = limits or testrun.TEST_LIMITS
    options: dict[str, object] = {"trusted": trusted, "test_command": test_command, "compiler": compiler,
                                  "flags": flags, "limits": msgspec.to_builtins(limits)}
    key = tree_key(root, unchanged, **options, runner=_runner_fingerprint(compiler))
    with _locks_guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:  # two checks of the same tree state wait for one baseline run
        if key in _memory:
            return _memory[key]
        report = _read_cached(key)
        if report is None:
            report = runner(root, dict(unchanged or {}), trusted=trusted, test_command=test_command,
                            compiler=compiler, flags=flags, limits=limits)
            if not _timed_out(report):  # a timeout may be the machine's load: do not keep it past this process
                _write_cached(key, report)
        with _locks_guard:
            _memory[key] = report
            while len(_memory) > MAX_MEMORY_REPORTS:  # a long-lived server sees many tree states: keep the newest
                oldest = next(iter(_memory))
                del _memory[oldest]
                _locks.pop(oldest, None)
        return report


@functools.cache
def _runner_fingerprint(compiler: str) -> str:
    """What else decides a report: the sandbox's own code (how tests are found, built, named and parsed) and the
    compiler's binary. A cached report from another cra or another gcc is not reused."""
    h = hashlib.blake2b(digest_size=12)
    for source in sorted(Path(__file__).parent.glob("*.py")):
        h.update(source.read_bytes())
    # The compiler is identified by its file, never run here: outside the sandbox a workspace-named one must not.
    found = shutil.which(compiler)
    try:
        st = Path(found).resolve().stat() if found else None
    except OSError:
        st = None
    h.update(f"{found}:{st.st_size}:{st.st_mtime_ns}".encode() if st else compiler.encode())
    return h.hexdigest()


def _timed_out(report: TestRunReport) -> bool:
    return report.timed_out or any(p.status == "timeout" for p in report.programs)


def _read_cached(key: str) -> TestRunReport | None:
    path = cache_dir() / f"{key}.json"
    try:
        cached = msgspec.json.decode(path.read_bytes(), type=_CacheFile)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None  # missing, unreadable or from another version: run again
    if cached.version != CACHE_VERSION or cached.key != key:
        return None
    return cached.report


def _write_cached(key: str, report: TestRunReport) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=folder, suffix=".tmp", delete=False) as f:
            f.write(msgspec.json.encode(_CacheFile(version=CACHE_VERSION, key=key, report=report)))
        os.replace(f.name, folder / f"{key}.json")
        _prune(folder)
    except OSError:
        pass  # a read-only or full cache only costs a rerun next time


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in entries[:-MAX_CACHE_FILES]:
        old.unlink(missing_ok=True)
