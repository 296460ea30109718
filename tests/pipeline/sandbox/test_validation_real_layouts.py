"""`check_change` on layouts real C libraries have, where it used to reject correct code (the repos oracle):
a `.c` file another unit `#include`s, a macro tree-sitter cannot parse in a unit whose header the project's
build generates, and a project that builds with an older C standard than cra's default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cra.pipeline.sandbox import CheckOptions, check_change
from cra.pipeline.sandbox.discover_units import including_units
from cra.pipeline.sandbox.flags import flags_for
from cra.pipeline.sandbox.project_std import project_c_standard, with_c_standard


@pytest.fixture(autouse=True)
def baseline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRA_BASELINE_CACHE", str(tmp_path / "baseline-cache"))


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


# ---- a .c file that another unit #includes (lzlib.c includes encoder_base.c) -----------------------------------
# part.c uses int32_t and struct Buffer without including anything: it only compiles inside whole.c.
WHOLE = '#include <stdint.h>\nstruct Buffer { int32_t pos; int32_t size; };\n#include "part.c"\n' \
        "int buffer_left(struct Buffer *b) { return b->size - part_pos(b); }\n"
PART = "static int32_t part_pos(const struct Buffer *b)\n{\n{BODY}\n}\n"


def part(body: str) -> str:
    return PART.replace("{BODY}", body)


@pytest.fixture
def included_unit(tmp_path: Path) -> Path:
    return write(tmp_path / "proj", {"whole.c": WHOLE, "part.c": part("    return 0;"),
                                     "tests/test_part.c": '#include "../part.c"\nint main(void) { return 0; }\n'})


def test_the_units_including_a_c_file_are_found_library_first(included_unit: Path) -> None:
    write(included_unit, {"all.h": '#include "whole.c"\n', "tests/test_all.c": '#include "../all.h"\nint main(void)'
                          " { return 0; }\n"})
    # whole.c is included (via all.h) by a test: the test is outermost for it; part.c's library includer comes
    # before the test programs that include it (directly or through whole.c and the header).
    assert including_units(included_unit, "whole.c") == ["tests/test_all.c"]
    assert including_units(included_unit, "part.c") == ["whole.c", "tests/test_all.c", "tests/test_part.c"]
    assert including_units(included_unit, "tests/test_part.c") == []
    # the edited text counts, not the file on disk
    assert including_units(included_unit, "part.c", {"whole.c": "int x;\n"}) == ["tests/test_part.c"]


@pytest.mark.parametrize("trusted", [False, True])
def test_an_included_c_file_is_compiled_inside_its_includer(included_unit: Path, trusted: bool) -> None:
    old = part("    return 0;")
    good = part("    return b->pos;")
    unit = str(included_unit / "part.c") if trusted else "part.c"  # absolute or workspace-relative alike
    check = check_change(included_unit, unit, good, CheckOptions(trusted=trusted), old_text=old,
                         function="part_pos")
    assert check.ok and check.compiled is True, check.message
    assert check.message == "parses and compiles (part.c as part of whole.c) without new warnings"
    check = check_change(included_unit, unit, good, CheckOptions(trusted=trusted), old_text=old,
                         function="part_pos", run_tests=True)
    assert check.ok and check.message.startswith("compiled (part.c as part of whole.c); "), check.message
    bad = part("    return b->offset;")
    check = check_change(included_unit, "part.c", bad, CheckOptions(trusted=trusted), old_text=old,
                         function="part_pos")
    assert not check.ok and check.kind == "compile" and check.compiled is False, check.message
    errors = [d for d in check.diagnostics if d.severity == "error"]
    assert [(d.file, d.line) for d in errors] == [("part.c", 3)] and "has no member named 'offset'" in \
        errors[0].message


def test_a_standalone_unit_that_a_test_includes_is_still_compiled_alone(tmp_path: Path) -> None:
    root = write(tmp_path, {"lib.c": "int twice(int v)\n{\n    return v;\n}\n",
                            "tests/test_lib.c": '#include "../lib.c"\nint main(void) { return twice(1) != 2; }\n'})
    check = check_change(root, "lib.c", "int twice(int v)\n{\n    return 2 * v;\n}\n",
                         old_text=(root / "lib.c").read_text())
    assert check.ok and check.message == "parses and compiles without new warnings", check.message


# ---- a macro tree-sitter cannot parse, in a unit whose header the project's build generates (fribidi) ----------
LIB = '#include "config.h"\nint count(const int *v, int len)\n{\n{BODY}\n}\n'
STUB = "    (void)v; (void)len;\n    return 0;"
MACRO_BODY = "    int n = 0;\n    if UNLIKELY\n      (len == 0)\n      return 0;\n    while (len--)\n" \
             "        n += *v++ != 0;\n    return n;"
BROKEN_BODY = "    int n = 0;\n    while (len-- {\n        n += *v++ != 0;\n    return n;"
CONFIG = "#define UNLIKELY(x) (__builtin_expect(!!(x), 0))\n"
TEST = "int count(const int *v, int len);\nint main(void)\n{\n    int v[3] = {1, 0, 2};\n" \
       "    return count(v, 3) == 2 && count(v, 0) == 0 ? 0 : 1;\n}\n"
# The project's own build writes config.h (as configure or meson would): cra's copy of the tree has none.
MAKEFILE = "check: test_count\n\t./test_count\n\nconfig.h:\n\tprintf '%s\\n' '" + CONFIG.strip() + \
           "' > config.h\n\ntest_count: lib.c test_count.c config.h\n\t$(CC) -o test_count lib.c test_count.c\n"


def lib(body: str) -> str:
    return LIB.replace("{BODY}", body)


@pytest.fixture
def generated_header(tmp_path: Path) -> Path:
    return write(tmp_path / "proj", {"lib.c": lib(STUB), "test_count.c": TEST, "Makefile": MAKEFILE})


def test_a_macro_tree_sitter_cannot_parse_is_left_to_the_tests_when_gcc_cannot_check(generated_header: Path) -> None:
    check = check_change(generated_header, "lib.c", lib(MACRO_BODY), old_text=lib(STUB), function="count")
    assert check.ok and check.kind == "ok" and check.compiled is None and check.parsed is None, check.message
    assert check.message.startswith("compile not checked (the unchanged code does not compile") and \
        "config.h: No such file or directory" in check.message
    assert "tree-sitter's syntax error on line 5 is left to the tests" in check.message


def test_untrusted_tests_that_never_built_the_unit_do_not_make_it_compiled(generated_header: Path) -> None:
    # cra's direct build of test_count.c needs lib.c, which does not build in the copy; an unrelated program runs.
    write(generated_header, {"tests/test_other.c": "int main(void) { return 0; }\n"})
    check = check_change(generated_header, "lib.c", lib(MACRO_BODY), old_text=lib(STUB), function="count",
                         run_tests=True)
    assert check.ok and check.tests_passed is True and check.tests_built_by == "direct", check.message
    assert check.compiled is None and check.parsed is None
    assert check.message.startswith("compile not checked") and "1 of 2 test programs ran" in check.message


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_trusted_the_projects_own_build_then_judges_the_body(generated_header: Path) -> None:
    options = CheckOptions(trusted=True)
    check = check_change(generated_header, "lib.c", lib(MACRO_BODY), options, old_text=lib(STUB), function="count",
                         run_tests=True, allow_new_warnings=True)
    assert check.ok and check.tests_passed is True and check.compiled is True, check.message
    assert check.message.startswith("compile not checked") and "tests passed (make check" in check.message
    # A real syntax error gcc could not see in cra's copy: the project's build sees it, and the change fails.
    check = check_change(generated_header, "lib.c", lib(BROKEN_BODY), options, old_text=lib(STUB),
                         function="count", run_tests=True, allow_new_warnings=True)
    assert not check.ok and check.kind == "test" and check.tests_passed is False, check.message


@pytest.mark.parametrize(("body", "ok"), [(MACRO_BODY, True), (BROKEN_BODY, False)])
def test_where_gcc_can_check_it_is_the_judge_of_syntax(generated_header: Path, body: str, ok: bool) -> None:
    write(generated_header, {"config.h": CONFIG})
    check = check_change(generated_header, "lib.c", lib(body), old_text=lib(STUB), function="count")
    assert check.ok is ok, check.message
    if ok:
        assert (check.parsed, check.compiled) == (True, True)
    else:  # tree-sitter and gcc agree
        assert check.kind == "syntax" and check.compiled is False and "expected ')'" in check.failure


# ---- the project's C standard -----------------------------------------------------------------------------------
C99_BODY = "    int s = 0;\n    for (int i = 0; i < n; i++)\n        s += i;\n    return s;"
C89_BODY = "    int s = 0;\n    int i;\n    for (i = 0; i < n; i++)\n        s += i;\n    return s;"


def sums(body: str) -> str:
    return f"int sum_to(int n)\n{{\n{body}\n}}\n"


@pytest.mark.parametrize(("build_file", "text"), [
    ("Makefile", "CC = gcc -std=c89\nCFLAGS = -Wall\n"),
    ("CMakeLists.txt", "project(p C)\nadd_compile_options(-std=c89 -pedantic)\n"),
    ("meson.build", "project('p', 'c', default_options : ['c_std=c89', 'warning_level=2'])\n"),
])
def test_a_c89_project_rejects_a_c99_only_body_untrusted(tmp_path: Path, build_file: str, text: str) -> None:
    root = write(tmp_path, {"sum.c": sums("    return n;"), build_file: text})
    check = check_change(root, "sum.c", sums(C99_BODY), old_text=sums("    return n;"), function="sum_to")
    assert not check.ok and check.kind == "compile", check.message
    assert "'for' loop initial declarations are only allowed in C99" in check.message
    check = check_change(root, "sum.c", sums(C89_BODY), old_text=sums("    return n;"), function="sum_to")
    assert check.ok and check.compiled is True, check.message


def test_a_project_naming_no_standard_keeps_crass_default(tmp_path: Path) -> None:
    root = write(tmp_path, {"sum.c": sums("    return n;"), "Makefile": "CFLAGS = -O2 -Wall\n"})
    assert project_c_standard(root) is None
    assert check_change(root, "sum.c", sums(C99_BODY), old_text=sums("    return n;")).ok
    assert flags_for(root, "sum.c").flags[0] == "-std=c11"


@pytest.mark.parametrize(("files", "std"), [
    ({"CMakeLists.txt": "set(CMAKE_C_STANDARD 99)\n"}, "gnu99"),
    ({"CMakeLists.txt": "set(CMAKE_C_STANDARD 11)\nset(CMAKE_C_EXTENSIONS OFF)\n"}, "c11"),
    ({"CMakeLists.txt": "set_target_properties(x PROPERTIES C_STANDARD 90)\n"}, "gnu90"),
    ({"CMakeLists.txt": "# add_compile_options(-std=c89)\nproject(p C)\n"}, None),  # a comment is not the build
    ({"configure.ac": "AC_INIT([p], [1])\nAC_PROG_CC_C99\n"}, "gnu99"),
    ({"Makefile": "CFLAGS = -std=c++11\n"}, None),  # a C++ standard is not C's
    ({"Makefile": "CFLAGS = -std=gnu89 -Wall\n", "meson.build": "project('p', 'c', default_options: "
                                                                "['c_std=c11'])\n"}, "c11"),  # meson is the build
])
def test_the_standard_is_read_from_the_build_files(tmp_path: Path, files: dict[str, str], std: str | None) -> None:
    write(tmp_path, files)
    assert project_c_standard(tmp_path) == std


def test_only_a_c_standard_flag_is_replaced() -> None:
    assert with_c_standard(["-std=c11", "-Wall"], "c89") == ["-std=c89", "-Wall"]
    assert with_c_standard(["-Wall"], "gnu99") == ["-std=gnu99", "-Wall"]
    assert with_c_standard(["-std=c++17", "-Wall"], "c89") == ["-std=c++17", "-Wall"]
    assert with_c_standard(["-std=c11"], None) == ["-std=c11"]


def test_a_cxx_unit_keeps_its_own_standard(tmp_path: Path) -> None:
    write(tmp_path, {"Makefile": "CFLAGS = -std=c89\n", "t.cpp": "int main() { return 0; }\n"})
    assert flags_for(tmp_path, "t.cpp", ["-std=c++17"]).flags[0] == "-std=c++17"
    assert flags_for(tmp_path, "lib.c").flags[0] == "-std=c89"
