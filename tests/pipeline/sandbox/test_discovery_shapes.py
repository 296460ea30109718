"""Test discovery on the fixture projects (tests/pipeline/sandbox/projects/<shape>): nothing is executed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cra.pipeline.sandbox.discover_units import ProjectUnits, main_guard
from cra.pipeline.sandbox.testplan import detect_tests

PROJECTS = Path(__file__).with_name("projects")


@pytest.fixture
def project(tmp_path: Path):
    def copy(shape: str) -> Path:
        return Path(shutil.copytree(PROJECTS / shape, tmp_path / shape))
    return copy


@pytest.mark.parametrize(("shape", "kind", "first_command"), [
    ("make_check", "make", "make check"),
    ("cmake_ctest", "cmake", "cmake "),
    ("meson_tests", "meson", "meson setup"),
    ("autotools_check", "autotools", "./configure"),
])
def test_trusted_detection_picks_the_projects_own_build(project, shape: str, kind: str, first_command: str) -> None:
    plan = detect_tests(project(shape), trusted=True)
    assert (plan.kind, plan.project_build, plan.programs) == (kind, kind, [])
    assert first_command in plan.steps[0].command
    assert plan.steps[-1].role == "test"


@pytest.mark.parametrize("shape", ["make_check", "cmake_ctest", "meson_tests", "autotools_check"])
def test_untrusted_detection_builds_directly_and_says_why(project, shape: str) -> None:
    plan = detect_tests(project(shape), trusted=False)
    assert plan.kind == "direct" and plan.steps == []
    assert any("trusted" in note and "--trust" in note for note in plan.not_runnable)
    assert all(p.compile and p.link[0] == "gcc" for p in plan.programs)


def _units(plan) -> dict[str, tuple[list[str], list[str], list[str], str]]:
    return {p.name: (p.units, p.included, p.defines, p.linker) for p in plan.programs}


def test_each_main_gets_only_the_units_it_uses(project) -> None:
    plan = detect_tests(project("several_mains"), trusted=False)
    # src/main.c (the app's main) and src/platform_only.c (uses nothing a test needs) are never linked.
    assert _units(plan) == {
        "tests/test_calc.c": (["tests/test_calc.c", "src/calc.c"], [], [], "gcc"),
        "tests/test_strutil.c": (["tests/test_strutil.c", "src/strutil.c"], [], [], "gcc"),
    }


def test_a_test_including_the_unit_is_not_linked_with_it_again(project) -> None:
    plan = detect_tests(project("include_unit"), trusted=False)
    assert _units(plan) == {"tests/test_buf.c": (["tests/test_buf.c"], ["src/buf.c"], [], "gcc")}


def test_self_test_behind_a_define_is_its_own_program(project) -> None:
    plan = detect_tests(project("self_test"), trusted=False)
    assert _units(plan) == {"hash.c[-DHASH_TEST]": (["hash.c"], [], ["HASH_TEST"], "gcc")}
    assert "-DHASH_TEST" in plan.programs[0].compile[0]


def test_cxx_driver_is_linked_with_gxx_and_c_units_compiled_with_gcc(project) -> None:
    plan = detect_tests(project("cxx_driver"), trusted=False)
    program = plan.programs[0]
    assert (program.linker, program.units) == ("g++", ["tests/test_calc.cpp", "src/calc.c"])
    assert [argv[0] for argv in program.compile] == ["g++", "gcc"]
    assert not any(flag.startswith("-std=c1") for flag in program.compile[0])  # no C standard for the C++ file


def test_compile_commands_flags_are_used(project) -> None:
    root = project("several_mains")
    (root / "compile_commands.json").write_text(
        f'[{{"directory": "{root}", "file": "src/calc.c", "command": "gcc -DCALC_FAST=1 -Isrc -c src/calc.c"}}]')
    plan = detect_tests(root, trusted=False)
    calc = next(argv for p in plan.programs for argv in p.compile if "src/calc.c" in argv)
    assert "-DCALC_FAST=1" in calc


def test_nothing_to_run_is_explained(tmp_path: Path) -> None:
    (tmp_path / "lib.c").write_text("int f(void) { return 1; }\n")
    plan = detect_tests(tmp_path, trusted=False)
    assert plan.kind == "none" and "no test programs found" in plan.not_runnable[0]


@pytest.mark.parametrize(("text", "guard"), [
    ("#ifdef X_TEST\nint main(void) { return 0; }\n#endif\n", "X_TEST"),
    ("#if defined(UNIT_TEST)\nint main(void) { return 0; }\n#endif\n", "UNIT_TEST"),
    ("#ifndef NO_MAIN\nint main(void) { return 0; }\n#endif\n", ""),
    ("#ifdef X_TEST\n#else\nint main(void) { return 0; }\n#endif\n", ""),
    ("int main(void) { return 0; }\n", ""),
])
def test_main_guard(text: str, guard: str) -> None:
    line = next(i for i, row in enumerate(text.splitlines()) if "main" in row and "int" in row)
    assert main_guard(text, line) == guard


def test_changed_text_is_what_is_scanned(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text("int a(void) { return 1; }\n")
    (tmp_path / "b.c").write_text("int b(void) { return 2; }\n")
    (tmp_path / "test_x.c").write_text("int a(void);\nint main(void) { return a() - 1; }\n")
    units = ProjectUnits.scan(tmp_path, {"test_x.c": "int b(void);\nint main(void) { return b() - 2; }\n"})
    assert units.programs()[0].units == ["test_x.c", "b.c"]
