"""What one run of a project's tests produced, per test program and (where the framework reports it) per case.

This is the contract between test discovery/running (which fills a TestRunReport for a tree state) and the
baseline-aware verdict (which compares the report for the unchanged tree with the report for the change).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from cra.pipeline.sandbox.diagnostics import Diagnostic

# passed / failed: it built and ran; build_failed: the program (or the project build it needs) did not build;
# timeout: stopped by the wall/CPU limit; not_run: known but never started (its reason says why).
ProgramStatus = Literal["passed", "failed", "build_failed", "timeout", "not_run"]
# How the tests were built and run: the project's own build (trusted only), a configured command (trusted only),
# cra's own compiler commands ("direct"), or nothing found ("none").
RunKind = Literal["cmake", "make", "meson", "autotools", "config", "direct", "none"]


class ProgramResult(msgspec.Struct, kw_only=True):
    """One test program (a direct-build binary, a ctest/meson test, or the whole `make check` when that is all
    the runner reports). `name` is stable across tree states: the program's workspace-relative path or the
    runner's test name."""

    name: str
    status: ProgramStatus
    cases_passed: list[str] = []
    cases_failed: list[str] = []
    # Case counts from the framework's summary ("3 Tests 1 Failures", ctest's "% tests passed"), which may name
    # no cases; 0 when it printed none.
    passed_count: int = 0
    failed_count: int = 0
    reason: str = ""  # why it failed / did not build / was not run, one line
    output: str = ""  # condensed build + run output
    diagnostics: list[Diagnostic] = []
    seconds: float = 0.0


class TestRunReport(msgspec.Struct, kw_only=True):
    """All test programs of one tree state. `not_run_reason` is set when nothing could be built or run at all
    (every program then has status not_run/build_failed, or there are none)."""

    kind: RunKind
    command: str  # what ran, as a user would read it ("make check", "gcc (direct build)")
    programs: list[ProgramResult] = []
    not_run_reason: str = ""
    timed_out: bool = False
    seconds: float = 0.0

    def by_name(self) -> dict[str, ProgramResult]:
        return {p.name: p for p in self.programs}
