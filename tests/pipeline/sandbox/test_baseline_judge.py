"""`judge`, the baseline-aware verdict: each row is a report on the unchanged tree, a report with the change, and
what the verdict must say (its status, what it blames on the change, what it counts as fixed, and what the
next attempt's prompt may and may not see)."""

from __future__ import annotations

from typing import Any

import pytest

from cra.pipeline.sandbox import baseline as base
from cra.pipeline.sandbox import test_report as tr
from cra.pipeline.sandbox.baseline import judge
from cra.pipeline.sandbox.test_report import ProgramResult

# Aliases: pytest would try to collect classes named Test*.
Report = tr.TestRunReport

ASSERT_ADD = "t_add: tests/test_add.c:6: main: Assertion `add(2, 3) == 5' failed.\ntest program stopped: signal:6"
ASSERT_MUL = "t_mul: tests/test_mul.c:6: main: Assertion `mul(2, 3) == 6' failed.\ntest program stopped: signal:6"


def prog(name: str, status: str = "passed", output: str = "", **kw: Any) -> ProgramResult:
    return ProgramResult(name=name, status=status, output=output, **kw)  # type: ignore[arg-type]


def report(*programs: ProgramResult, **kw: Any) -> Report:
    kw.setdefault("kind", "direct")
    kw.setdefault("command", "gcc (direct build)")
    return Report(programs=list(programs), **kw)


ADD_FAILS = prog("tests/test_add.c", "failed", ASSERT_ADD)
ADD_PASSES = prog("tests/test_add.c")
MUL_FAILS = prog("tests/test_mul.c", "failed", ASSERT_MUL)
SUB_PASSES = prog("tests/test_sub.c")

CASES: list[tuple[str, Report, Report, dict[str, Any]]] = [
    ("the stub's test now passes; a failure the tree already had is not the change's",
     report(ADD_FAILS, MUL_FAILS, SUB_PASSES), report(ADD_PASSES, MUL_FAILS, SUB_PASSES),
     {"status": "passed", "fixed": ["tests/test_add.c"], "caused": [], "ran": 3,
      "baseline_failures": ["tests/test_mul.c"], "failure_lacks": "mul"}),
    ("a wrong body: the target's test still fails on the target; the unrelated failure is not in the prompt",
     report(ADD_FAILS, MUL_FAILS, SUB_PASSES), report(ADD_FAILS, MUL_FAILS, SUB_PASSES),
     {"status": "failed", "unfixed": ["tests/test_add.c"], "fixed": [], "failure_has": "add(2, 3) == 5",
      "failure_lacks": "mul", "baseline_failures": ["tests/test_mul.c"]}),
    ("a test that passed at baseline and fails after is a new failure with all its output",
     report(ADD_FAILS, SUB_PASSES),
     report(ADD_PASSES, prog("tests/test_sub.c", "failed", "Assertion `sub(5, 3) == 2' failed.")),
     {"status": "failed", "new_failures": ["tests/test_sub.c"], "fixed": ["tests/test_add.c"],
      "failure_has": "sub(5, 3) == 2"}),
    ("a test that stops building after the change",
     report(SUB_PASSES), report(prog("tests/test_sub.c", "build_failed", "calc.c:4: error: expected ';'",
                                     reason="exit 1")),
     {"status": "failed", "new_failures": ["tests/test_sub.c"], "failure_has": "expected ';'"}),
    ("a test that newly times out is a timeout, even where it failed at baseline (the stub returned 0)",
     report(ADD_FAILS, SUB_PASSES),
     report(prog("tests/test_add.c", "timeout", "test program stopped: timeout"), SUB_PASSES),
     {"status": "timeout", "new_timeouts": ["tests/test_add.c"], "failure_has": "time limit"}),
    ("a test that timed out at baseline and still does is not the change's",
     report(prog("tests/test_slow.c", "timeout"), SUB_PASSES),
     report(prog("tests/test_slow.c", "timeout"), SUB_PASSES),
     {"status": "passed", "caused": [], "baseline_failures": ["tests/test_slow.c"]}),
    ("a new failure line in a program that already failed is the change's; only that line reaches the prompt",
     report(prog("make check", "failed", ASSERT_MUL, reason="tests failed")),
     report(prog("make check", "failed", ASSERT_MUL + "\n" + ASSERT_ADD.replace("add(2, 3) == 5", "add(-4, 4) == 0"),
                 reason="tests failed")),
     {"status": "failed", "new_failures": ["make check"], "failure_has": "add(-4, 4) == 0", "failure_lacks": "mul"}),
    ("the target's failed assert hid a later one: the later failure is listed, not blamed",
     report(prog("t", "failed", ASSERT_ADD)), report(prog("t", "failed", ASSERT_MUL)),
     {"status": "passed", "caused": [], "revealed": ["t"], "message_has": "failing on an earlier-hidden check"}),
    ("a failure line that differs only by an address, a timing, a clock time or a seed is the same failure",
     report(prog("t", "failed", "13:02:11 leak at 0x7ffd1234 after 0.013 s (seed 1733224805) failed"), SUB_PASSES),
     report(prog("t", "failed", "13:02:15 leak at 0x7ffe9999 after 0.020 s (seed 1733224811) failed"),
            SUB_PASSES),
     {"status": "passed", "caused": [], "baseline_failures": ["t"]}),
    ("a failure line that differs by a small number is another failure",
     report(prog("t", "failed", "case 3 failed")), report(prog("t", "failed", "case 4 failed")),
     {"status": "failed", "new_failures": ["t"], "failure_has": "case 4 failed", "failure_lacks": "case 3"}),
    ("per case: a case that passed at baseline and fails after; a baseline case failure is not counted",
     report(prog("suite", "failed", "test_mul FAILED", cases_passed=["test_sub", "test_len"],
                 cases_failed=["test_mul", "test_add"])),
     report(prog("suite", "failed", "test_mul FAILED\ntest_len FAILED: expected 3", cases_passed=["test_sub", "test_add"],
                 cases_failed=["test_mul", "test_len"])),
     {"status": "failed", "new_failures": ["suite::test_len"], "fixed": ["suite::test_add"],
      "failure_has": "test_len FAILED", "failure_lacks": "test_mul", "baseline_failures": ["suite::test_mul"]}),
    ("per case: the target's case still failing is unfixed; others failing before are not counted",
     report(prog("suite", "failed", cases_passed=["test_sub"], cases_failed=["test_mul", "test_add"])),
     report(prog("suite", "failed", "test_add FAILED: 5 != 1", cases_passed=["test_sub"],
                 cases_failed=["test_mul", "test_add"])),
     {"status": "failed", "unfixed": ["suite::test_add"], "new_failures": [], "failure_has": "5 != 1",
      "failure_lacks": "test_mul"}),
    ("every program failed to build at baseline: the tests cannot judge the change",
     report(prog("tests/test_add.c", "build_failed", reason="undefined reference to `add_three'")),
     report(prog("tests/test_add.c", "build_failed", reason="undefined reference to `add_three'")),
     {"status": "not_run", "message_has": "tests not run: no test program builds or runs on the unchanged tree "
                                          "(tests/test_add.c: undefined reference to `add_three')"}),
    ("the report says why nothing ran",
     report(kind="make", command="make check", not_run_reason="make: *** No rule to make target 'check'"),
     report(kind="make", command="make check", not_run_reason="make: *** No rule to make target 'check'"),
     {"status": "not_run", "message_has": "tests not run: make: *** No rule to make target 'check'"}),
    ("the only test fails before and after, never on the target: inconclusive, not passed",
     report(prog("tests/test_dsfmt.c", "failed", "checking dsfmt_genrand... mismatch at 17")),
     report(prog("tests/test_dsfmt.c", "failed", "checking dsfmt_genrand... mismatch at 17")),
     {"status": "inconclusive", "caused": [], "baseline_failures": ["tests/test_dsfmt.c"],
      "message_has": "tests inconclusive: every test that ran fails on the unchanged tree too (tests/test_dsfmt.c), "
                     "and no failure names add: they cannot judge the change"}),
    ("a suite whose cases partly pass is not inconclusive: those cases judge the change",
     report(prog("suite", "failed", cases_passed=["test_sub"], cases_failed=["test_mul"])),
     report(prog("suite", "failed", cases_passed=["test_sub"], cases_failed=["test_mul"])),
     {"status": "passed", "caused": [], "baseline_failures": ["suite::test_mul"]}),
    ("no test programs at all",
     report(kind="none", command="", not_run_reason="no test programs found"),
     report(kind="none", command="", not_run_reason="no test programs found"),
     {"status": "no_tests", "message_has": "no tests found"}),
    ("a program unrunnable at baseline is listed with its reason and never blamed",
     report(prog("tests/test_io.c", "build_failed", reason="needs libfoo"), SUB_PASSES),
     report(prog("tests/test_io.c", "build_failed", reason="needs libfoo"), SUB_PASSES),
     {"status": "passed", "not_run": {"tests/test_io.c": "not run at baseline: needs libfoo"},
      "message_has": "not run: tests/test_io.c (not run at baseline: needs libfoo)"}),
    ("the change breaks the whole build: every test that ran at baseline is a new failure",
     report(SUB_PASSES, ADD_FAILS), report(not_run_reason="the project does not build: calc.c: error"),
     {"status": "failed", "new_failures": ["tests/test_sub.c", "tests/test_add.c"],
      "failure_has": "the project does not build"}),
    ("the test run ran out of time after the change",
     report(SUB_PASSES), report(prog("tests/test_sub.c", "not_run"), timed_out=True),
     {"status": "timeout", "new_timeouts": ["tests/test_sub.c"]}),
]


@pytest.mark.parametrize(("baseline", "after", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_judge(baseline: Report, after: Report, want: dict[str, Any]) -> None:
    verdict = judge(baseline, after, target="add")
    assert verdict.status == want["status"], verdict.message
    for field in ("new_failures", "new_timeouts", "unfixed", "fixed", "revealed", "not_run"):
        if field in want:
            assert getattr(verdict, field) == want[field], (field, verdict)
    if "caused" in want:
        assert verdict.caused == want["caused"], verdict
    if "baseline_failures" in want:
        assert verdict.baseline_failures == want["baseline_failures"], verdict
    if "ran" in want:
        assert len(verdict.ran) == want["ran"]
    if "failure_has" in want:
        assert want["failure_has"] in verdict.failure, verdict.failure
    if "failure_lacks" in want:
        assert want["failure_lacks"] not in verdict.failure, verdict.failure
    if "message_has" in want:
        assert want["message_has"] in verdict.message, verdict.message
    # the verdict names its outcome first, and only a failed verdict has a failure for the prompt
    assert verdict.message.startswith({"passed": "tests passed", "failed": "tests failed", "timeout": "timeout",
                                       "not_run": "tests not run", "no_tests": "no tests found",
                                       "inconclusive": "tests inconclusive"}[verdict.status])
    assert bool(verdict.failure) == (verdict.status in ("failed", "timeout"))


def test_the_message_lists_what_ran_failed_and_was_fixed() -> None:
    verdict = judge(report(ADD_FAILS, MUL_FAILS, SUB_PASSES), report(ADD_PASSES, MUL_FAILS, SUB_PASSES), target="add")
    assert verdict.message == ("tests passed (gcc (direct build): 3 of 3 test programs ran; fixed: tests/test_add.c; "
                               "failing before the change too, not counted: tests/test_mul.c)")
    assert verdict.failed_before == ["tests/test_add.c", "tests/test_mul.c"]
    assert verdict.failed_after == ["tests/test_mul.c"]


def test_without_a_target_a_still_failing_test_is_not_blamed() -> None:
    verdict = judge(report(ADD_FAILS, SUB_PASSES), report(ADD_FAILS, SUB_PASSES), target=None)
    assert verdict.status == "passed" and verdict.caused == []
    alone = judge(report(ADD_FAILS), report(ADD_FAILS), target=None)
    assert alone.status == "inconclusive" and alone.caused == [], alone  # nothing passes: nothing to show


def test_a_name_inside_a_longer_identifier_is_not_the_target() -> None:
    still = prog("t", "failed", "Assertion `address_of(p) != 0' failed.")
    assert judge(report(still), report(still), target="add").caused == []
    named = prog("t", "failed", "tests/t.c:10:test_add:FAIL: Expected 5 Was 0")
    assert judge(report(named), report(named), target="add").unfixed == ["t"]


def test_condensed_output_counts_that_changed_do_not_make_a_failure_new() -> None:
    # The same failing build, condensed: the change altered a warning, so the summary line's counts differ.
    def failing(lines: int, warnings: int) -> ProgramResult:
        return prog("make check", "failed", f"[condensed: {lines} lines, 0 error lines, {warnings} warning lines, "
                                            "kept below]\nFAIL: example\n")
    verdict = judge(report(failing(120, 3), kind="make"), report(failing(118, 2), kind="make"), target="gzungetc")
    assert verdict.status == "inconclusive" and verdict.caused == [], verdict


def test_the_verdict_round_trips_as_json() -> None:
    import msgspec

    verdict = judge(report(ADD_FAILS, MUL_FAILS), report(ADD_FAILS, MUL_FAILS), target="add")
    again = msgspec.json.decode(msgspec.json.encode(verdict), type=base.TestVerdict)
    assert again == verdict and again.caused == ["tests/test_add.c"]


def test_when_every_test_that_can_run_the_target_fails_before_and_after_the_verdict_is_inconclusive() -> None:
    # zlib's shape: test/example.c reaches compress2 (through compress) and fails with the stub and after the
    # change, on a line that never names compress2; minigzip passes both times but never runs it.
    example = prog("test/example.c", "failed", "compress error: -2")
    minigzip = prog("test/minigzip.c")
    both = report(example, minigzip)
    verdict = judge(both, both, target="compress2", reaching={"test/example.c"})
    assert verdict.status == "inconclusive" and verdict.caused == [], verdict.message
    assert verdict.message.startswith("tests inconclusive: the tests that can run compress2 (test/example.c) fail "
                                      "on the unchanged tree too, the same way")
    # without knowing what reaches the target, the passing program counts (as before)
    assert judge(both, both, target="compress2").status == "passed"
    # a reaching program that passes after the change judges it
    assert judge(both, report(prog("test/example.c"), minigzip), target="compress2",
                 reaching={"test/example.c"}).status == "passed"
    # one that passes before and after (pass-to-pass) judges it too
    assert judge(both, both, target="compress2", reaching={"test/example.c", "test/minigzip.c"}).status == "passed"
