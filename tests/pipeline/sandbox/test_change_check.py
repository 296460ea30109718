"""`check_change`, the one validation of a proposed change: parse, signature, compile (one file or a header with
its source), new warnings, the project's tests. Each row is a change and the check that should stop it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cra.pipeline.sandbox import check_change

LIB = "int f(void)\n{\n    return 1;\n}\n"
HEADER = "#ifndef LIB_H\n#define LIB_H\nint f(void);\n#endif\n"
TEST = '#include <assert.h>\n#include "../lib.h"\nint main(void) { assert(f() == 1); return 0; }\n'


@pytest.fixture(autouse=True)
def baseline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(tmp_path / "baseline-cache"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "lib.c").write_text('#include "lib.h"\n' + LIB)
    (tmp_path / "lib.h").write_text(HEADER)
    return tmp_path


def body(text: str) -> str:
    return f'#include "lib.h"\nint f(void)\n{{\n{text}\n}}\n'


@pytest.mark.parametrize(("new", "kwargs", "kind", "message"), [
    (body("    return 1;"), {}, "ok", "parses and compiles without new warnings"),
    (body("    for (;;"), {}, "syntax", "the edited file does not parse (syntax error on line 4)"),
    ('#include "lib.h"\nint f(int x)\n{\n    return x;\n}\n', {"function": "f"}, "signature",
     "the signature of f changed (was `int f(void)`, now `int f(int x)`); keep it exactly"),
    (body("    return g;"), {}, "compile", "does not compile: lib.c:4:12: error: 'g' undeclared"),
    (body("    int unused = 2;\n    return 1;"), {}, "warnings", "compiles with new warnings: lib.c:4:9: warning: "
     "unused variable 'unused'"),
    (body("    int unused = 2;\n    return 1;"), {"allow_new_warnings": True}, "ok", "parses and compiles"),
    (body("    return 1;"), {"run_tests": True}, "ok", "compiled; no tests found"),
])
def test_each_check_in_turn(project: Path, new: str, kwargs: dict[str, object], kind: str, message: str) -> None:
    old = (project / "lib.c").read_text()
    check = check_change(project, "lib.c", new, old_text=old, **kwargs)  # type: ignore[arg-type]
    assert check.kind == kind and check.message.startswith(message), check.message
    assert check.ok == (kind == "ok")
    if kind == "ok":
        assert (check.parsed, check.compiled, check.failure) == (True, True, "")
    if kind == "syntax":
        # The compiler confirms tree-sitter (it is the authority: tree-sitter expands no macros).
        assert (check.parsed, check.compiled) == (False, False) and check.failure.startswith(check.message)
        assert "error: expected expression" in check.failure
    if kind == "compile":
        assert check.compiled is False and "'g' undeclared" in check.failure
        assert [d.line for d in check.diagnostics if d.severity == "error"] == [4]
    if kind == "warnings":
        assert check.compiled is True and check.diagnostics[0].flag == "-Wunused-variable"


def test_a_warning_the_file_already_had_does_not_count(project: Path) -> None:
    noisy = body("    int unused = 2;\n    return 1;")
    (project / "lib.c").write_text(noisy)
    assert check_change(project, "lib.c", noisy.replace("return 1", "return 2"), old_text=noisy).ok


def test_without_the_old_text_nothing_is_parsed_before_compiling(project: Path) -> None:
    check = check_change(project, "lib.c", body("    for (;;"))
    assert check.kind == "compile" and check.parsed is True


@pytest.mark.parametrize(("returns", "ok", "message"), [
    ("1", True, "compiled; tests passed (gcc (direct build): 1 of 1 test programs ran)"),
    ("0", False, "compiled; tests failed (gcc (direct build): 1 of 1 test programs ran; failing after the change: "
                 "tests/test_f.c)"),
])
def test_the_projects_tests_run_against_the_change(project: Path, returns: str, ok: bool, message: str) -> None:
    (project / "tests").mkdir()
    (project / "tests" / "test_f.c").write_text(TEST)
    check = check_change(project, str(project / "lib.c"), body(f"    return {returns};"), run_tests=True)
    assert check.ok is ok and check.message == message, check.message
    assert check.tests_passed is ok and check.compiled is True
    if not ok:
        assert check.kind == "test" and check.diagnostics_source == "tests" and "Assertion" in check.failure


def test_a_header_and_its_source_change_together(project: Path) -> None:
    header = HEADER.replace("int f(void);", "int f(void);\nint g(int v);")
    source = (project / "lib.c").read_text() + "\nint g(int v)\n{\n    return v + f();\n}\n"
    check = check_change(project, "lib.c", source, old_text=(project / "lib.c").read_text(), extra={"lib.h": header})
    assert check.ok, check.message
    # the header is written with the source: a slip in it breaks the unit that includes it
    broken = HEADER.replace("int f(void);", "int f(void);\nint g(int v)")  # missing semicolon
    check = check_change(project, "lib.c", source, old_text=(project / "lib.c").read_text(), extra={"lib.h": broken})
    assert not check.ok and check.kind == "compile" and "before '{' token" in check.message


def test_a_header_alone_is_compiled_itself(project: Path) -> None:
    check = check_change(project, "lib.h", HEADER.replace("int f(void);", "int f(void) oops;"), old_text=HEADER)
    assert not check.ok and check.kind in ("syntax", "compile")


def test_errors_the_unchanged_unit_has_too_are_not_the_changes(project: Path) -> None:
    # A header the project's build generates is missing in cra's copy: the unit never compiled there. The change
    # is not blamed for that; a new error it adds still fails it.
    old = '#include "config.h"\n' + (project / "lib.c").read_text()
    (project / "lib.c").write_text(old)
    good = old.replace("return 1;", "return 2;", 1)
    check = check_change(project, "lib.c", good, old_text=old)
    assert check.ok and check.compiled is None, check.message
    assert check.message.startswith("compile not checked") and "config.h" in check.message
    check = check_change(project, "lib.c", good, old_text=old, run_tests=True)
    assert check.ok and check.message.startswith("compile not checked") and check.compiled is None, check.message
    bad = old.replace("return 1;", "return g;", 1)  # gcc stops at the missing header: nothing new to see
    assert check_change(project, "lib.c", bad, old_text=old).compiled is None


def test_a_syntax_error_the_compiler_accepts_is_not_one(project: Path) -> None:
    old = "#define z_const const\n" + (project / "lib.c").read_text()
    (project / "lib.c").write_text(old)
    new = old.replace("{", "{\n    z_const char *unused_p = 0;\n    (void)unused_p;", 1)
    check = check_change(project, "lib.c", new, old_text=old)
    assert check.ok and check.compiled is True, check.message


def test_a_new_error_beside_an_old_one_is_the_changes(project: Path) -> None:
    old = (project / "lib.c").read_text() + "int broken_before = not_declared_anywhere;\n"
    (project / "lib.c").write_text(old)
    check = check_change(project, "lib.c", old.replace("return 1;", "return g;", 1), old_text=old)
    assert not check.ok and check.kind == "compile" and check.compiled is False
    assert "'g' undeclared" in check.failure and "not_declared_anywhere" not in check.failure
    same = check_change(project, "lib.c", old.replace("return 1;", "return 2;", 1), old_text=old)
    assert same.ok and same.compiled is None and "not_declared_anywhere" in same.message
