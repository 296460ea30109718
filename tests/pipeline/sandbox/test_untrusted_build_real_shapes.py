"""Untrusted direct test builds on shapes real libraries have (zlib, cJSON, stb): decorator macros around
definitions and main, a helper whose own copy is behind an #ifdef, library units that do not build here or need
other libraries, and POSIX names strict ISO modes hide. Small projects written by each test, built with real gcc."""

from __future__ import annotations

from pathlib import Path

from cra.pipeline.sandbox.decorator_macros import Decorator, decorator_macros, expand_decorators, macro_definitions
from cra.pipeline.sandbox.discover_units import ProjectUnits
from cra.pipeline.sandbox.project_std import gnu_dialect
from cra.pipeline.sandbox.testplan import detect_tests
from cra.pipeline.sandbox.testrun import run_tests

CHECK_MAIN = """int main(void) {{
    if ({expr}) {{ printf("ok\\n"); return 0; }}
    printf("FAIL: {expr}\\n");
    return 1;
}}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def statuses(root: Path) -> dict[str, tuple[str, str]]:
    report = run_tests(root, {}, trusted=False)
    return {p.name: (p.status, p.reason) for p in report.programs}


# -- decorator macros (zlib's ZEXPORT/ZLIB_INTERNAL/local/OF, cJSON's CJSON_PUBLIC(type) and CJSON_CDECL) -------

def test_decorator_macros_are_recognised_and_only_those() -> None:
    macros = decorator_macros([macro_definitions(
        "#define API\n#define local static\n#define HIDDEN __attribute__((visibility (\"hidden\")))\n"
        "#define OF(args) args\n#define PUBLIC(type) __declspec(dllexport) type\n#define EXPORT API\n"
        "#define LIMIT 10\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\n#define WRAP(x) (x)\n")])
    assert macros == {"API": Decorator(), "local": Decorator(keep="static"), "HIDDEN": Decorator(),
                      "OF": Decorator(passes_argument=True), "PUBLIC": Decorator(passes_argument=True),
                      "EXPORT": Decorator()}
    text = ('local int HIDDEN twice OF((int x));\nPUBLIC(char *) EXPORT name(void) { return "API"; }\n'
            "#ifdef API\n/* API */ int y = LIMIT;\n#endif\n")
    assert expand_decorators(text, macros) == (
        'static int  twice (int x);\nchar *  name(void) { return "API"; }\n'
        "#ifdef API\n/* API */ int y = LIMIT;\n#endif\n")


def test_the_headers_a_unit_includes_decide_what_a_macro_means(tmp_path: Path) -> None:
    # contrib/ redefines `local` as nothing: the library's own units still see `#define local static`.
    root = write(tmp_path, {
        "lib.h": "#define local static\n#define API\n",
        "lib.c": '#include "lib.h"\nlocal int hidden(void) { return 1; }\nint API shown(void) { return hidden(); }\n',
        "contrib/other.h": "#define local\n",
        "contrib/other.c": '#include "other.h"\nlocal int exported(void) { return 2; }\n',
    })
    units = ProjectUnits.scan(root)
    assert units.units["lib.c"].defines == ["shown"]
    assert units.units["contrib/other.c"].defines == ["exported"]


def test_helpers_defined_through_decorator_macros_and_k_and_r_are_linked(tmp_path: Path) -> None:
    # zlib: `OF((uInt size))` prototypes read as variables named "size" in two units made them clash, and a
    # K&R definition returning a pointer read as a prototype: zutil.c (zcalloc) was never linked.
    root = write(tmp_path, {
        # uInt is size_t's type: the units declare malloc with it
        "zconf.h": "#define ZEXPORT\n#define OF(args) args\n#define local static\ntypedef unsigned long uInt;\n",
        "mylib.h": '#include "zconf.h"\nint ZEXPORT add_twice OF((int a, int b));\nvoid *z_alloc OF((uInt size));\n',
        "zutil.c": '#include <stdlib.h>\n#include "mylib.h"\nextern void *malloc OF((uInt size));\n'
                   "void *z_alloc(size)\n    uInt size;\n{\n    return malloc(size);\n}\n",
        "mylib.c": '#include <stdlib.h>\n#include "mylib.h"\nlocal int twice OF((int x));\n'
                   "extern void *malloc OF((uInt size));\n"
                   "local int twice(x)\n    int x;\n{\n    return 2 * x;\n}\n"
                   "int ZEXPORT add_twice(a, b)\n    int a;\n    int b;\n{\n    int *p = z_alloc(sizeof(int));\n"
                   "    int sum = twice(a) + twice(b);\n    free(p);\n    return sum;\n}\n",
        "test/example.c": '#include <stdio.h>\n#include "mylib.h"\n' + CHECK_MAIN.format(expr="add_twice(1, 2) == 6"),
    })
    units = ProjectUnits.scan(root)
    assert (units.units["zutil.c"].defines, units.units["mylib.c"].defines) == (["z_alloc"], ["add_twice"])
    plan = detect_tests(root, trusted=False)
    assert [(p.name, p.units) for p in plan.programs] == [
        ("test/example.c", ["test/example.c", "mylib.c", "zutil.c"])]
    assert statuses(root) == {"test/example.c": ("passed", "")}


def test_a_test_with_a_decorated_main_is_a_program_and_its_included_unit_is_not_linked_again(
        tmp_path: Path) -> None:
    # cJSON: `int CJSON_CDECL main(void)` around Unity's macros read as a variable "CJSON_CDECL", so no test was
    # a program and each was linked into the others; tests/common.h #includes "../cJSON.c" for every test.
    unity = ("static int failures;\n#define UNITY_BEGIN() (failures = 0)\n#define RUN_TEST(f) f()\n"
             "#define UNITY_END() failures\n")
    test = ('#include "common.h"\nstatic void {name}(void) {{ if (cj_version() != 7) failures++; }}\n'
            "int CJSON_CDECL main(void)\n{{\n    UNITY_BEGIN();\n    RUN_TEST({name});\n    return UNITY_END();\n}}\n")
    root = write(tmp_path, {
        "cj.h": "#define CJSON_CDECL\n#define CJ_PUBLIC(type) type\nCJ_PUBLIC(int) cj_version(void);\n",
        "cj.c": '#include "cj.h"\nCJ_PUBLIC(int) cj_version(void) { return 7; }\n',
        "tests/common.h": '#include <stdio.h>\n#include "../cj.c"\n' + unity,
        "tests/parse_tests.c": test.format(name="parses"),
        "tests/print_tests.c": test.format(name="prints"),
    })
    plan = detect_tests(root, trusted=False)
    assert {p.name: (p.units, p.included) for p in plan.programs} == {
        "tests/parse_tests.c": (["tests/parse_tests.c"], ["cj.c"]),
        "tests/print_tests.c": (["tests/print_tests.c"], ["cj.c"]),
    }
    assert statuses(root) == {"tests/parse_tests.c": ("passed", ""), "tests/print_tests.c": ("passed", "")}


def test_a_main_behind_if_0_is_no_program(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "tests/old.c": "#if 0\nint main(void) { return 0; }\n#endif\nint old_helper(void) { return 1; }\n",
        "tests/test_new.c": "int main(void) { return 0; }\n",
    })
    assert [p.name for p in detect_tests(root, trusted=False).programs] == ["tests/test_new.c"]


# -- the linker decides what static discovery cannot -------------------------------------------------------------

def test_a_helper_whose_own_copy_is_behind_an_ifdef_comes_from_the_library(tmp_path: Path) -> None:
    # zlib's minigzip.c defines its own gzwrite() only with Z_SOLO; otherwise gzwrite.c's is linked.
    root = write(tmp_path, {
        "store.h": "int store_put(int v);\n",
        "store.c": '#include "store.h"\nint store_put(int v) { return v + 1; }\n',
        "test/minitool.c": '#include <stdio.h>\n#include "store.h"\n'
                           "#ifdef SOLO\nint store_put(int v) { return v; }\n#endif\n"
                           + CHECK_MAIN.format(expr="store_put(41) == 42"),
    })
    plan = detect_tests(root, trusted=False)
    assert plan.programs[0].units == ["test/minitool.c"]  # static discovery takes the #ifdef copy for real
    assert statuses(root) == {"test/minitool.c": ("passed", "")}


def test_units_taken_for_names_the_test_does_not_need_cannot_break_its_build(tmp_path: Path) -> None:
    # stb: platform code (windows.h, OpenGL) is found for names only dead branches of a test use.
    root = write(tmp_path, {
        "core.c": "int core_value(void) { return 3; }\n",
        "platform/win.c": "#include <windows_only_header.h>\nint platform_init(void) { return 0; }\n",
        "platform/gl.c": "void glDrawSomething(void);\nint gl_init(void) { glDrawSomething(); return 0; }\n",
        "tests/test_core.c": "#include <stdio.h>\nint core_value(void);\nint platform_init(void);\n"
                             "int gl_init(void);\n"
                             "#ifdef _WIN32\nstatic int unused(void) { return platform_init() + gl_init(); }\n"
                             "#endif\n" + CHECK_MAIN.format(expr="core_value() == 3"),
    })
    plan = detect_tests(root, trusted=False)
    assert set(plan.programs[0].units) == {"tests/test_core.c", "core.c", "platform/win.c", "platform/gl.c"}
    assert statuses(root) == {"tests/test_core.c": ("passed", "")}
    # Left out only because it was not changed: a changed unit's error is the verdict.
    report = run_tests(root, {"core.c": "int core_value(void) { return 3 }\n"}, trusted=False)
    assert report.programs[0].status == "build_failed"
    assert report.programs[0].reason.startswith("core.c did not compile: core.c:1:")


def test_a_needed_unit_that_does_not_build_is_named_in_the_reason(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "core.c": "#include <generated_config.h>\nint core_value(void) { return 3; }\n",
        "tests/test_core.c": "#include <stdio.h>\nint core_value(void);\n" + CHECK_MAIN.format(expr="core_value() == 3"),
    })
    status, reason = statuses(root)["tests/test_core.c"]
    assert status == "build_failed"
    assert "undefined reference to `core_value'" in reason and "core.c did not compile" in reason
    assert "generated_config.h" in reason


# -- the C dialect of test builds ---------------------------------------------------------------------------------

DIRENT_TEST = "#include <dirent.h>\n#include <stdio.h>\n" + CHECK_MAIN.format(expr="DT_DIR != DT_REG")


def test_a_project_naming_no_standard_builds_its_tests_in_a_gnu_dialect(tmp_path: Path) -> None:
    # stb's tests use DT_DIR, which glibc hides under -std=c11 without _DEFAULT_SOURCE.
    root = write(tmp_path, {"Makefile": "CFLAGS = -O2\n", "tests/test_dirs.c": DIRENT_TEST})
    plan = detect_tests(root, trusted=False)
    assert "-std=gnu11" in plan.programs[0].compile[0] and "-std=c11" not in plan.programs[0].compile[0]
    assert statuses(root) == {"tests/test_dirs.c": ("passed", "")}
    # A project naming a strict standard is built with it, as its own build would.
    (root / "Makefile").write_text("CFLAGS = -std=c99 -O2\n")
    plan = detect_tests(root, trusted=False)
    assert "-std=c99" in plan.programs[0].compile[0]
    status, reason = statuses(root)["tests/test_dirs.c"]
    assert status == "build_failed" and "DT_DIR" in reason


def test_gnu_dialect_turns_only_iso_c_standards() -> None:
    assert gnu_dialect(["-std=c11", "-Wall"]) == ["-std=gnu11", "-Wall"]
    assert gnu_dialect(["-std=c89"]) == ["-std=gnu89"]
    assert gnu_dialect(["-std=c++17", "-std=gnu99", "-std=cfoo"]) == ["-std=c++17", "-std=gnu99", "-std=cfoo"]


def test_a_program_failing_at_baseline_is_not_blamed_for_build_warnings_the_change_alters(tmp_path: Path) -> None:
    # zlib's zran exits 1 without arguments either way; the change's unit compiled with fewer warnings made the
    # condensed build log another length, and the length line read as a new failure line.
    from cra.pipeline.sandbox.baseline import judge

    def noisy(warnings: int) -> str:
        return "int lib_value(void) {\n" + "".join(f"    int unused_{i};\n" for i in range(warnings)) + "    return 1;\n}\n"

    root = write(tmp_path, {
        "lib.c": noisy(80),
        "tests/tool.c": '#include <stdio.h>\nint lib_value(void);\nint main(int argc, char **argv) {\n'
                        '    (void)argv;\n    if (argc < 2) { fprintf(stderr, "usage: tool FILE\\n"); return 1; }\n'
                        "    return lib_value() == 1 ? 0 : 1;\n}\n",
    })
    before = run_tests(root, {}, trusted=False)
    after = run_tests(root, {"lib.c": noisy(60)}, trusted=False)
    assert [p.status for p in before.programs] == [p.status for p in after.programs] == ["failed"]
    verdict = judge(before, after, target="lib_value")
    # not blamed; and as nothing passes before or after, not shown as passing either
    assert verdict.status == "inconclusive" and verdict.caused == [], verdict.message


def test_a_test_reading_files_next_to_it_runs_in_its_own_folder(tmp_path: Path) -> None:
    # cJSON's parse_examples reads "inputs/test1" and json_patch_tests "json-patch-tests/tests.json", from tests/.
    reader = ('#include <stdio.h>\n#define DATA_DIR "inputs/"\nint main(void) {\n'
              '    FILE *f = fopen(DATA_DIR "case1", "r");\n    if (!f) { perror("inputs/case1"); return 1; }\n'
              "    fclose(f);\n    return 0;\n}\n")
    root = write(tmp_path, {"tests/inputs/case1": "{}\n", "tests/parse_examples.c": reader,
                            "tests/test_plain.c": 'int main(void) { return 0; }\n'})
    plan = detect_tests(root, trusted=False)
    assert {p.name: p.run_dir for p in plan.programs} == {"tests/parse_examples.c": "tests", "tests/test_plain.c": ""}
    assert statuses(root) == {"tests/parse_examples.c": ("passed", ""), "tests/test_plain.c": ("passed", "")}
    # A file of that name at the root too: the root is where it runs, as before.
    write(root, {"inputs/case1": "{}\n"})
    assert {p.name: p.run_dir for p in detect_tests(root, trusted=False).programs}["tests/parse_examples.c"] == ""
