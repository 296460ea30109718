"""A7's deterministic repair: cases the compiler rejects are dropped so the cases that compile still count."""

from __future__ import annotations

from pathlib import Path

from pipeline.sandbox import run_generated_test
from pipeline.sandbox.frameworks import GENERATED_TEST_NAME
from pipeline.stages import test_generation as a7

LIB = "int add(int a, int b) { return a + b; }\n"


def suite() -> a7.TestSuite:
    return a7.TestSuite(cases=[
        a7.TestCase(name="adds", category="happy_path", description="adds", body="CHECK(add(2, 3) == 5);"),
        a7.TestCase(name="typo", category="edge_case", description="bad", body="CHECK(ad(0, 0) == 0) int x = ;"),
        a7.TestCase(name="adds", category="edge_case", description="zero", body="CHECK(add(0, 0) == 0);"),
    ])


def test_compile_errors_map_to_their_cases_and_the_rest_passes(tmp_path: Path) -> None:
    (tmp_path / "calc.c").write_text(LIB)
    text = a7.render_test_file(suite(), library="plain", function="add", includes=[],
                               declarations=["int add(int a, int b)"])
    first = run_generated_test(tmp_path, ["calc.c"], text)
    errors = {d.line for d in first.diagnostics if d.severity == "error" and d.file.endswith(GENERATED_TEST_NAME)}
    assert not first.ok and errors
    assert a7.cases_at_lines(text, errors) == {"typo"}
    kept = a7.without_cases(suite(), {"typo"})
    assert kept is not None and [c.name for c in a7.unique_cases(kept)] == ["adds", "adds_2"]
    again = run_generated_test(tmp_path, ["calc.c"], a7.render_test_file(
        kept, library="plain", function="add", includes=[], declarations=["int add(int a, int b)"]))
    assert again.ok, again.output
    assert a7.without_cases(suite(), {"adds", "typo", "adds_2"}) is None
    assert a7.cases_at_lines(text, {1, 2}) == set()  # the includes belong to no case


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
