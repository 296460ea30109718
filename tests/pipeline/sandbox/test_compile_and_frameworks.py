"""compile_unit in a sandboxed copy; framework detection and test runs on tiny real projects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cra.pipeline.sandbox import (
    SandboxError,
    UntrustedCommand,
    compile_unit,
    detect_test_framework,
    run_generated_test,
    run_project_tests,
)

LIB_C = '#include "calc.h"\nint add(int a, int b) { return a + b; }\n'
LIB_H = "#ifndef CALC_H\n#define CALC_H\nint add(int a, int b);\n#endif\n"
APP_MAIN = '#include <stdio.h>\n#include "calc.h"\nint main(void) { printf("%d\\n", add(1, 2)); return 0; }\n'
ASSERT_TEST = '#include <assert.h>\n#include "calc.h"\nint main(void) { assert(add(2, 2) == 4); return 0; }\n'
UNITY_H = r"""
#ifndef UNITY_H
#define UNITY_H
#include <stdio.h>
extern int unity_tests, unity_failures, unity_failed_now;
void setUp(void); void tearDown(void);
#define UNITY_BEGIN() (unity_tests = 0, unity_failures = 0)
#define RUN_TEST(fn) do { unity_failed_now = 0; unity_tests++; setUp(); fn(); tearDown(); \
    if (unity_failed_now) unity_failures++; else printf("%s:%d:%s:PASS\n", __FILE__, __LINE__, #fn); } while (0)
#define TEST_ASSERT_EQUAL_INT(e, a) do { if ((e) != (a)) { unity_failed_now = 1; \
    printf("%s:%d:%s:FAIL: Expected %d Was %d\n", __FILE__, __LINE__, __func__, (int)(e), (int)(a)); return; } } while (0)
#define UNITY_END() (printf("-----------------------\n%d Tests %d Failures 0 Ignored\n", unity_tests, unity_failures), unity_failures)
#endif
"""
UNITY_C = '#include "unity.h"\nint unity_tests, unity_failures, unity_failed_now;\n'
UNITY_TEST = r"""
#include "unity.h"
#include "calc.h"
void setUp(void) {}
void tearDown(void) {}
static void test_add_small(void) { TEST_ASSERT_EQUAL_INT(3, add(1, 2)); }
static void test_add_zero(void) { TEST_ASSERT_EQUAL_INT(5, add(5, 0)); }
static void test_add_negative(void) { TEST_ASSERT_EQUAL_INT(-1, add(1, -2)); }
int main(void) { UNITY_BEGIN(); RUN_TEST(test_add_small); RUN_TEST(test_add_zero); RUN_TEST(test_add_negative);
                 return UNITY_END(); }
"""
CMOCKA_TEST = r"""
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "calc.h"
static void test_add(void **state) { (void)state; assert_int_equal(add(2, 3), 5); }
static void test_add_neg(void **state) { (void)state; assert_int_equal(add(-2, 3), 1); }
int main(void) {
    const struct CMUnitTest tests[] = { cmocka_unit_test(test_add), cmocka_unit_test(test_add_neg) };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
"""
BROKEN_ADD = '#include "calc.h"\nint add(int a, int b) { return a - b; }\n'
HAVE_CMOCKA = Path("/usr/include/cmocka.h").exists()


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def calc(tmp_path: Path) -> Path:
    return _write(tmp_path / "calc", {"src/calc.c": LIB_C, "src/calc.h": LIB_H, "src/main.c": APP_MAIN})


def test_compile_unit_success_and_structured_failure(calc: Path) -> None:
    good = compile_unit(calc, "src/calc.c", LIB_C.replace("a + b", "b + a"))
    assert good.ok and good.diagnostics == [] and good.new_warnings == []
    bad = compile_unit(calc, "src/calc.c", '#include "calc.h"\nint add(int a, int b) {\n  int unused;\n  return a + c;\n}\n')
    assert not bad.ok
    errors = [d for d in bad.diagnostics if d.severity == "error"]
    assert [(d.file, d.line, d.col) for d in errors] == [("src/calc.c", 4, 14)]
    assert "'c' undeclared" in errors[0].message
    assert sorted((d.file, d.line, d.flag) for d in bad.new_warnings) == [
        ("src/calc.c", 2, "-Wunused-parameter"), ("src/calc.c", 3, "-Wunused-variable")]
    assert "/tmp/" not in bad.stderr  # sandbox paths are mapped back to workspace-relative ones
    assert (calc / "src" / "calc.c").read_text() == LIB_C


def test_compile_unit_uses_compile_commands_flags(calc: Path) -> None:
    (calc / "compile_commands.json").write_text(json.dumps([{
        "directory": str(calc), "file": "src/calc.c",
        "command": "gcc -DCALC_OFFSET=1 -Werror=unused-variable -Isrc -c src/calc.c -o calc.o",
    }]))
    text = '#include "calc.h"\nint add(int a, int b) { return a + b + CALC_OFFSET; }\n'
    assert compile_unit(calc, "src/calc.c", text).ok
    result = compile_unit(calc, "src/calc.c", text.replace("{ return", "{ int u; return"))
    assert not result.ok and result.diagnostics[0].flag == "-Werror=unused-variable"
    assert "-DCALC_OFFSET=1" in result.flags


def test_compile_unit_reports_a_missing_compiler(calc: Path) -> None:
    # Trusted: an untrusted workspace's compiler setting is replaced by the default one.
    result = compile_unit(calc, "src/calc.c", LIB_C, compiler="no-such-cc-cra", trusted=True)
    assert not result.ok and "no-such-cc-cra" in result.stderr


def test_detects_plain_assert_tests_and_runs_them(calc: Path) -> None:
    _write(calc, {"tests/test_calc.c": ASSERT_TEST})
    fw = detect_test_framework(calc)
    assert (fw.name, fw.runner, fw.test_files) == ("assert", "direct", ["tests/test_calc.c"])
    passing = run_project_tests(calc, {})
    assert (passing.ok, passing.passed, passing.failed) == (True, 1, 0)
    failing = run_project_tests(calc, {"src/calc.c": BROKEN_ADD})
    assert (failing.ok, failing.passed, failing.failed) == (False, 0, 1)
    assert "Assertion" in failing.output


def test_detects_unity_and_counts_failures(calc: Path) -> None:
    _write(calc, {"vendor/unity/unity.h": UNITY_H, "vendor/unity/unity.c": UNITY_C, "test/test_calc.c": UNITY_TEST})
    fw = detect_test_framework(calc)
    assert (fw.name, fw.library, fw.test_files) == ("unity", "unity", ["test/test_calc.c"])
    result = run_project_tests(calc, {"src/calc.c": BROKEN_ADD})
    # a - b: add(1,2) = -1 fails, add(5,0) = 5 passes, add(1,-2) = 3 fails
    assert (result.ok, result.passed, result.failed, result.framework) == (False, 1, 2, "unity")
    assert "test_add_small:FAIL: Expected 3 Was -1" in result.output


@pytest.mark.skipif(not HAVE_CMOCKA, reason="libcmocka-dev is not installed")
def test_detects_cmocka_and_runs_it(calc: Path) -> None:
    _write(calc, {"tests/calc_test.c": CMOCKA_TEST})
    assert detect_test_framework(calc).name == "cmocka"
    ok = run_project_tests(calc, {})
    assert (ok.ok, ok.passed, ok.failed) == (True, 2, 0)
    bad = run_project_tests(calc, {"src/calc.c": BROKEN_ADD})
    assert (bad.ok, bad.passed, bad.failed) == (False, 0, 2)


def test_detects_make_target_and_runs_it_only_when_trusted(calc: Path, tmp_path: Path) -> None:
    marker = tmp_path / "make-ran"
    _write(calc, {
        "tests/test_calc.c": ASSERT_TEST,
        "Makefile": ("test:\n\tgcc -Isrc -o t tests/test_calc.c src/calc.c\n\t./t\n"
                     f"\techo ran > {marker} || true\n\techo MAKE-TEST-RAN\n"),
    })
    fw = detect_test_framework(calc)
    assert (fw.name, fw.library, fw.runner, fw.make_target) == ("make", "assert", "make", "test")
    untrusted = run_project_tests(calc, {})
    assert untrusted.command == "gcc (direct build)" and "MAKE-TEST-RAN" not in untrusted.output
    trusted = run_project_tests(calc, {}, trusted=True)
    assert trusted.ok and trusted.command == "make test" and "MAKE-TEST-RAN" in trusted.output
    assert not marker.exists()  # even trusted, the build only writes inside its sandbox
    broken = run_project_tests(calc, {"src/calc.c": BROKEN_ADD}, trusted=True)
    assert broken.ok is False and broken.failed >= 1


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_detects_ctest(calc: Path) -> None:
    _write(calc, {
        "tests/test_calc.c": ASSERT_TEST,
        "CMakeLists.txt": ("cmake_minimum_required(VERSION 3.13)\nproject(calc C)\nenable_testing()\n"
                           "add_executable(test_calc tests/test_calc.c src/calc.c)\n"
                           "target_include_directories(test_calc PRIVATE src)\nadd_test(NAME calc COMMAND test_calc)\n"),
    })
    fw = detect_test_framework(calc)
    assert (fw.name, fw.runner) == ("ctest", "ctest")


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_ctest_runs_when_trusted(calc: Path) -> None:
    test_detects_ctest(calc)
    result = run_project_tests(calc, {}, trusted=True)
    assert (result.ok, result.passed, result.failed) == (True, 1, 0), result.output


def test_untrusted_test_command_is_refused_and_nothing_runs(calc: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(UntrustedCommand, match="not trusted"):
        run_project_tests(calc, {}, test_command=f"touch {marker}")
    assert not marker.exists()
    trusted = run_project_tests(calc, {}, test_command="echo 3 Tests 0 Failures 0 Ignored", trusted=True)
    assert (trusted.ok, trusted.passed, trusted.failed) == (True, 3, 0)


def test_no_tests_found(calc: Path) -> None:
    assert detect_test_framework(calc).name == "none"
    result = run_project_tests(calc, {})
    assert result.ok is None and "no test programs" in result.output


def test_generated_test_against_project_sources(calc: Path) -> None:
    test = '#include <stdio.h>\n#include "calc.h"\nint main(void) { if (add(2, 3) != 5) { puts("add broken"); return 1; } puts("ok"); return 0; }\n'
    # src/main.c also defines main: it must be left out of the link.
    passed = run_generated_test(calc, ["src/calc.c", "src/main.c"], test)
    assert (passed.ok, passed.passed, passed.failed) == (True, 1, 0)
    failed = run_generated_test(calc, ["src/calc.c"], test, changed={"src/calc.c": BROKEN_ADD})
    assert failed.ok is False and "add broken" in failed.output
    broken = run_generated_test(calc, ["src/calc.c"], test.replace("add(2, 3)", "sub(2, 3)"))
    assert broken.ok is False and any("sub" in d.message for d in broken.diagnostics)
    with pytest.raises(SandboxError, match="no main"):
        run_generated_test(calc, ["src/calc.c"], "int x;\n")
    with pytest.raises(SandboxError, match="not found"):
        run_generated_test(calc, ["src/nope.c"], test)


def test_generated_test_that_hangs_is_stopped(calc: Path) -> None:
    from cra.pipeline.sandbox import Limits

    test = '#include "calc.h"\nint main(void) { for (;;) add(1, 2); }\n'
    result = run_generated_test(calc, ["src/calc.c"], test, limits=Limits(wall_seconds=1.0, cpu_seconds=5))
    assert result.ok is False and "timeout" in result.output


def test_project_flags_naming_the_workspace_point_into_the_sandbox(calc: Path) -> None:
    """-I flags from flags_for/compile_commands name the user's tree; the build must use the sandbox copy."""
    from cra.pipeline.sandbox import flags_for

    _write(calc, {"tests/test_calc.c": ASSERT_TEST})
    flags = flags_for(calc, "src/calc.c").flags
    assert any(str(calc.resolve()) in f for f in flags)
    result = run_project_tests(calc, {}, flags=flags)
    assert (result.ok, result.passed) == (True, 1), result.output
    generated = run_generated_test(calc, ["src/calc.c"], ASSERT_TEST, flags=flags)
    assert generated.ok, generated.output
