"""A7's deterministic repair: slips fixed without a model, and each case judged on its own so that the cases that
pass still count when one does not compile, fails or crashes."""

from __future__ import annotations

from pathlib import Path

from cra.pipeline.context import parse_source
from cra.pipeline.flows.tests import split_cases
from cra.pipeline.sandbox import run_generated_test
from cra.pipeline.stages import test_generation as a7

LIB = "int add(int a, int b) { return a + b; }\n"


def suite() -> a7.TestSuite:
    return a7.TestSuite(cases=[
        a7.TestCase(name="adds", category="happy_path", description="adds", body="CHECK(add(2, 3) == 5);"),
        a7.TestCase(name="typo", category="edge_case", description="bad", body="CHECK(add(0, 0) == 0) int x = ;"),
        a7.TestCase(name="adds", category="edge_case", description="zero", body="CHECK(add(0, 0) == 0);"),
        a7.TestCase(name="wrong", category="edge_case", description="bad expectation",
                    body="CHECK(add(1, 1) == 3);"),
        a7.TestCase(name="crashes", category="error_path", description="NULL",
                    body="int *p = NULL;\nCHECK(add(*p, 1) == 1);"),
    ])


def runner(root: Path):
    def run(one: a7.TestSuite):
        return run_generated_test(root, ["calc.c"], a7.render_test_file(
            one, library="plain", function="add", includes=[], declarations=["int add(int a, int b)"]))
    return run


def test_each_case_runs_alone_and_only_the_passing_ones_are_kept(tmp_path: Path) -> None:
    (tmp_path / "calc.c").write_text(LIB)
    whole = runner(tmp_path)(suite())
    assert not whole.ok  # one bad case sinks the whole program
    kept, failing = split_cases(suite(), runner(tmp_path))
    assert kept is not None and [c.name for c in kept.cases] == ["adds", "adds_2"]
    assert set(failing) == {"typo", "wrong", "crashes"}
    assert failing["typo"].startswith("does not compile: ")
    assert failing["wrong"].startswith("fails on the current code: ") and "add(1, 1) == 3" in failing["wrong"]
    assert failing["crashes"].startswith("fails on the current code")
    assert runner(tmp_path)(kept).ok


def test_no_case_passing_alone_keeps_nothing(tmp_path: Path) -> None:
    (tmp_path / "calc.c").write_text(LIB)
    bad = a7.TestSuite(cases=[c for c in suite().cases if c.name in ("typo", "wrong")])
    kept, failing = split_cases(bad, runner(tmp_path))
    assert kept is None and set(failing) == {"typo", "wrong"}


def test_unbalanced_parentheses_are_closed_at_the_statement_end() -> None:
    fix = a7.balance_parentheses
    assert fix("set_if_match(&f, 1, 2); CHECK(f == (a == b);") == "set_if_match(&f, 1, 2); CHECK(f == (a == b));"
    assert fix("int r = f(1);\nCHECK(r == (2)") == "int r = f(1);\nCHECK(r == (2))"
    for fine in ('CHECK(strcmp(s, "(;") == 0);', "for (int i = 0; i < 3; i++) { CHECK(f(i) == i); }",
                 "char c = '(';\nCHECK(f(c) == 1);"):
        assert fix(fine) == fine


def test_cases_that_never_call_the_function_are_dropped_before_compiling() -> None:
    cases = a7.TestSuite(cases=[
        a7.TestCase(name="other", category="happy_path", description="", body="CHECK(add2(1, 1) == 2);"),
        a7.TestCase(name="real", category="happy_path", description="", body="CHECK(add (1, 1) == (2);"),
    ])
    fixed, dropped = a7.repaired(cases, "add")
    assert dropped == ["other"]
    assert fixed is not None and [c.body for c in fixed.cases] == ["CHECK(add (1, 1) == (2));"]
    assert a7.repaired(a7.TestSuite(cases=cases.cases[:1]), "add") == (None, ["other"])


def test_declarations_drop_storage_classes_and_unit_private_macros() -> None:
    assert a7.plain_declaration("STATIC size_t propagate_ones(uint8_t x);") == "size_t propagate_ones(uint8_t x)"
    assert a7.plain_declaration("static inline int f(void)") == "int f(void)"
    assert a7.plain_declaration("FILE *open_log(const char *p)") == "FILE *open_log(const char *p)"
    assert a7.plain_declaration("int g(int a)") == "int g(int a)"


def test_assert_in_a_case_compiles_and_fails_like_check(tmp_path: Path) -> None:
    (tmp_path / "calc.c").write_text(LIB)
    cases = a7.TestSuite(cases=[a7.TestCase(name="uses_assert", category="happy_path", description="",
                                            body="assert(add(1, 1) == 2);")])
    text = a7.render_test_file(cases, library="plain", function="add", includes=[],
                               declarations=["STATIC int add(int a, int b)"])
    result = run_generated_test(tmp_path, ["calc.c"], text)
    assert result.ok, result.output


def test_a_last_statement_without_its_semicolon_is_completed(tmp_path: Path) -> None:
    (tmp_path / "calc.c").write_text(LIB)
    cases = a7.TestSuite(cases=[a7.TestCase(name="no_semicolon", category="happy_path", description="",
                                            body="int r = add(2, 2);\nCHECK(r == 4)")])
    text = a7.render_test_file(cases, library="plain", function="add", includes=[],
                               declarations=["int add(int a, int b)"])
    assert "    CHECK(r == 4);" in text
    assert run_generated_test(tmp_path, ["calc.c"], text).ok


def test_macros_private_to_the_unit_are_copied_when_the_cases_use_them(tmp_path: Path) -> None:
    unit = ("#include <stddef.h>\n#define ALL_ONES ((size_t)-1)\n#define SPREAD(x) ((x) ? ALL_ONES : 0)\n"
            "#define UNUSED 42\nsize_t spread(unsigned char x) { return SPREAD(x); }\n")
    (tmp_path / "spread.c").write_text(unit)
    macros = {s.name: s.text for s in parse_source("spread.c", unit.encode()).symbols
              if s.kind in ("macro", "macro_function")}
    cases = a7.TestSuite(cases=[a7.TestCase(name="ones", category="happy_path", description="",
                                            body="CHECK(spread(1) == SPREAD(1));\nCHECK(spread(0) == 0);")])
    used = a7.macros_used([c.body for c in cases.cases], macros)
    assert [m.split()[1] for m in used] == ["ALL_ONES", "SPREAD(x)"]  # SPREAD needs ALL_ONES; UNUSED stays out
    text = a7.render_test_file(cases, library="plain", function="spread", includes=[],
                               declarations=["size_t spread(unsigned char x)"], macros=used)
    assert "UNUSED" not in text
    assert run_generated_test(tmp_path, ["spread.c"], text).ok
    without = a7.render_test_file(cases, library="plain", function="spread", includes=[],
                                  declarations=["size_t spread(unsigned char x)"])
    assert not run_generated_test(tmp_path, ["spread.c"], without).ok
