"""`check_change` with the tests judged against the unchanged tree, on the fixture projects of
`baseline_projects/` (real gcc, real sandbox): a failure the project already has is never the change's, a suite
that does not build at all means "tests not run", an endless loop is a timeout, and the unchanged tree's tests
run once per tree state (in memory, then from the on-disk cache)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cra.pipeline.sandbox import CheckOptions, Limits, check_change, testrun
from cra.pipeline.sandbox import baseline as base

PROJECTS = Path(__file__).parent / "baseline_projects"
STUB = "    return 0;\n"


@pytest.fixture(autouse=True)
def baseline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "baseline-cache"
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(folder))
    base.clear_memory_cache()
    yield folder
    base.clear_memory_cache()


def project(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(PROJECTS / name, tmp_path / name))


def with_body(root: Path, body: str) -> str:
    text = (root / "calc.c").read_text()
    assert STUB in text
    return text.replace(STUB, body, 1)


def test_a_correct_body_passes_although_the_suite_already_fails(tmp_path: Path) -> None:
    root = project(tmp_path, "known_failure")
    check = check_change(root, "calc.c", with_body(root, "    return a + b;\n"), function="add", run_tests=True)
    assert check.ok and check.kind == "ok" and check.tests_passed is True, check.message
    assert check.message == ("compiled; tests passed (gcc (direct build): 3 of 3 test programs ran; "
                             "fixed: tests/test_add.c; failing before the change too, not counted: tests/test_mul.c)")
    assert check.tests is not None and check.tests.caused == [] and check.failure == ""


def test_a_wrong_body_fails_on_its_own_failure_only(tmp_path: Path) -> None:
    root = project(tmp_path, "known_failure")
    check = check_change(root, "calc.c", with_body(root, "    return a - b;\n"), function="add", run_tests=True)
    assert not check.ok and check.kind == "test" and check.tests_passed is False, check.message
    assert check.message.startswith("compiled; tests failed (gcc (direct build): 3 of 3 test programs ran; "
                                    "still failing on the target: tests/test_add.c;")
    assert "Assertion `add(2, 3) == 5' failed" in check.failure
    assert "mul" not in check.failure and "test_mul" not in check.failure  # the tree's own failure stays out
    assert check.tests is not None and check.tests.baseline_failures == ["tests/test_mul.c"]


def test_a_body_that_breaks_a_passing_test_is_blamed_for_it(tmp_path: Path) -> None:
    root = project(tmp_path, "known_failure")
    text = with_body(root, "    return a + b;\n").replace("return a - b;", "return b - a;")  # sub, which passed
    check = check_change(root, "calc.c", text, function="add", run_tests=True)
    assert not check.ok and check.kind == "test"
    assert check.tests is not None and check.tests.new_failures == ["tests/test_sub.c"]
    assert check.tests.fixed == ["tests/test_add.c"]
    assert "sub(5, 3) == 2" in check.failure and "mul" not in check.failure


def test_a_suite_that_does_not_build_means_tests_not_run(tmp_path: Path) -> None:
    root = project(tmp_path, "broken_suite")
    check = check_change(root, "calc.c", with_body(root, "    return a + b;\n"), function="add", run_tests=True)
    assert check.ok and check.kind == "ok" and check.compiled is True and check.tests_passed is None
    assert check.message.startswith("compiled; tests not run: ") and "add_three" in check.message
    assert check.tests_not_run and check.message == f"compiled; tests not run: {check.tests_not_run}"
    assert check.failure == ""


def test_a_suite_that_only_fails_elsewhere_is_inconclusive_not_passed(tmp_path: Path) -> None:
    # dsfmt's and http-parser's shape: the one test program fails on the unchanged tree, before and after the
    # change, and its failure never names the target. Nothing passes, so nothing may read "tests passed".
    root = project(tmp_path, "known_failure")
    for name in ("test_add.c", "test_sub.c"):
        (root / "tests" / name).unlink()
    check = check_change(root, "calc.c", with_body(root, "    return a + b;\n"), function="add", run_tests=True)
    assert check.ok and check.kind == "ok" and check.compiled is True and check.tests_passed is None, check.message
    assert check.message.startswith("compiled; tests inconclusive: every test that ran fails on the unchanged tree "
                                    "too (tests/test_mul.c), and no failure names add"), check.message
    assert "tests passed" not in check.message and check.tests_not_run and check.failure == ""


def test_a_body_whose_only_reaching_test_fails_as_before_is_inconclusive_though_others_pass(tmp_path: Path) -> None:
    # zlib's compress2 shape: the test that runs the target calls it through another function and fails on a
    # line that never names it; another test passes but never runs it.
    root = tmp_path / "lib"
    (root / "tests").mkdir(parents=True)
    (root / "calc.c").write_text("int add(int a, int b)\n{\n    return 0;\n}\n\n"
                                 "int sum2(int a, int b)\n{\n    return add(a, b);\n}\n\n"
                                 "int neg(int a)\n{\n    return -a;\n}\n")
    (root / "tests" / "test_sum.c").write_text('#include <stdio.h>\nint sum2(int a, int b);\nint main(void) {\n'
                                               '    if (sum2(2, 3) != 5) { printf("sum2 wrong\\n"); return 1; }\n'
                                               "    return 0;\n}\n")
    (root / "tests" / "test_neg.c").write_text("int neg(int a);\nint main(void) { return neg(2) != -2; }\n")
    wrong = (root / "calc.c").read_text().replace("    return 0;\n", "    return a * 0;\n", 1)
    check = check_change(root, "calc.c", wrong, function="add", run_tests=True)
    assert check.ok and check.tests_passed is None and check.tests is not None, check.message
    assert check.tests.status == "inconclusive" and "tests passed" not in check.message
    assert "the tests that can run add (tests/test_sum.c) fail on the unchanged tree too" in check.message
    right = (root / "calc.c").read_text().replace("    return 0;\n", "    return a + b;\n", 1)
    fixed = check_change(root, "calc.c", right, function="add", run_tests=True)
    assert fixed.ok and fixed.tests_passed is True and fixed.tests is not None
    assert fixed.tests.fixed == ["tests/test_sum.c"], fixed.message


def test_an_endless_loop_is_a_timeout(tmp_path: Path) -> None:
    root = project(tmp_path, "known_failure")
    options = CheckOptions(limits=Limits(cpu_seconds=1, wall_seconds=4.0))
    check = check_change(root, "calc.c", with_body(root, "    while (a != b + 1) { }\n    return a + b;\n"),
                         options, function="add", run_tests=True)
    assert not check.ok and check.kind == "timeout" and check.tests_passed is False, check.message
    assert check.tests is not None and check.tests.new_timeouts == ["tests/test_add.c"]
    assert "timed out after the change: tests/test_add.c" in check.message
    assert "time limit" in check.failure and "mul" not in check.failure


def test_the_baseline_runs_once_per_tree_state(tmp_path: Path, baseline_cache: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, "known_failure")
    runs: list[dict[str, str]] = []
    real = testrun.run_tests

    def counting(root_: Any, changed: dict[str, str], **kw: Any) -> Any:
        runs.append(dict(changed))
        return real(root_, changed, **kw)

    monkeypatch.setattr(testrun, "run_tests", counting)

    def baselines() -> int:  # the baseline runs with the unchanged text (or nothing) in place
        return sum(1 for c in runs if all(STUB in t for t in c.values()))

    for body in ("    return a + b;\n", "    return a - b;\n"):  # two attempts of one task
        check_change(root, "calc.c", with_body(root, body), function="add", run_tests=True)
    assert (len(runs), baselines()) == (3, 1)
    assert len(list(baseline_cache.glob("*.json"))) == 1

    base.clear_memory_cache()  # a second `cra run`: a new process, the same tree
    check = check_change(root, "calc.c", with_body(root, "    return a + b;\n"), function="add", run_tests=True)
    assert check.ok and (len(runs), baselines()) == (4, 1)

    (root / "tests" / "test_mul.c").write_text((root / "tests" / "test_mul.c").read_text().replace("6", "5"))
    check = check_change(root, "calc.c", with_body(root, "    return a + b;\n"), function="add", run_tests=True)
    assert (len(runs), baselines()) == (6, 2)  # another tree state: the baseline runs again
    assert check.ok and check.tests is not None and check.tests.baseline_failures == []


def test_an_unreadable_cache_file_only_costs_a_rerun(tmp_path: Path, baseline_cache: Path) -> None:
    root = project(tmp_path, "known_failure")
    first = base.baseline_report(root, trusted=False)
    (cached,) = baseline_cache.glob("*.json")
    cached.write_text("{not json")
    base.clear_memory_cache()
    again = base.baseline_report(root, trusted=False)
    assert again is not first and [(p.name, p.status) for p in again.programs] == \
        [(p.name, p.status) for p in first.programs] == \
        [("tests/test_add.c", "failed"), ("tests/test_mul.c", "failed"), ("tests/test_sub.c", "passed")]
    assert cached.read_bytes().startswith(b'{"version"')  # rewritten by the rerun


def test_the_unchanged_text_of_an_unsaved_buffer_is_the_baseline(tmp_path: Path) -> None:
    root = project(tmp_path, "known_failure")
    fixed = with_body(root, "    return a + b;\n")
    (root / "calc.c").write_text(fixed)  # on disk the function is done; the editor still shows the stub
    stub = fixed.replace("    return a + b;\n", STUB, 1)
    check = check_change(root, "calc.c", fixed, function="add", run_tests=True, baseline={"calc.c": stub})
    assert check.ok and check.tests is not None and check.tests.fixed == ["tests/test_add.c"]
    assert base.tree_key(root, {"calc.c": stub}) != base.tree_key(root)


def test_an_untrusted_test_command_means_tests_not_run(tmp_path: Path) -> None:
    root = project(tmp_path, "known_failure")
    options = CheckOptions(test_command="touch ran && make check", trusted=False)
    check = check_change(root, "calc.c", with_body(root, "    return a + b;\n"), options, function="add",
                         run_tests=True)
    assert check.ok and check.tests_passed is None and check.compiled is True
    assert check.message.startswith("compiled; tests not run: the workspace is not trusted, so the configured test "
                                    "command 'touch ran && make check' was not run")
    assert check.tests_not_run.startswith("the workspace is not trusted") and check.failure == ""
