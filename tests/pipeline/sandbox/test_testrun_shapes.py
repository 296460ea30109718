"""run_tests on the fixture projects: per-program status for a known-good tree and a known-bad body, no project
command when untrusted, timeouts, and incremental trusted rebuilds."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cra.pipeline.sandbox import Limits
from cra.pipeline.sandbox.build_cache import CACHE_ENV, build_dir_for
from cra.pipeline.sandbox.testrun import run_tests

PROJECTS = Path(__file__).with_name("projects")
BAD_SUB = "a - b", "a + b"  # sub() now adds: tests of sub fail, tests of add still pass


@pytest.fixture(autouse=True)
def build_cache() -> Iterator[Path]:
    """Persistent build copies go to a throwaway folder the sandbox user can reach."""
    path = Path(tempfile.mkdtemp(prefix="cra-test-builds-"))
    os.chmod(path, 0o711)
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(path)
    yield path
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path):
    def copy(shape: str) -> Path:
        return Path(shutil.copytree(PROJECTS / shape, tmp_path / shape))
    return copy


def _statuses(report) -> dict[str, str]:
    return {p.name: p.status for p in report.programs}


def _bad(root: Path, rel: str, old: str, new: str) -> dict[str, str]:
    text = (root / rel).read_text()
    assert old in text
    return {rel: text.replace(old, new)}


@pytest.mark.parametrize(("shape", "unit", "edit", "good", "bad"), [
    ("several_mains", "src/calc.c", BAD_SUB, {"tests/test_calc.c": "passed", "tests/test_strutil.c": "passed"},
     {"tests/test_calc.c": "failed", "tests/test_strutil.c": "passed"}),
    ("include_unit", "src/buf.c", ("s += v[i]", "s -= v[i]"), {"tests/test_buf.c": "passed"},
     {"tests/test_buf.c": "failed"}),
    ("self_test", "hash.c", ("h * 33u", "h * 31u"), {"hash.c[-DHASH_TEST]": "passed"},
     {"hash.c[-DHASH_TEST]": "failed"}),
    ("cxx_driver", "src/calc.c", BAD_SUB, {"tests/test_calc.cpp": "passed"}, {"tests/test_calc.cpp": "failed"}),
])
def test_direct_builds_per_program(project, shape, unit, edit, good, bad) -> None:
    root = project(shape)
    report = run_tests(root, {}, trusted=False)
    assert (report.kind, _statuses(report), report.not_run_reason) == ("direct", good, "")
    assert _statuses(run_tests(root, _bad(root, unit, *edit), trusted=False)) == bad


def test_a_unit_that_does_not_compile_fails_only_the_programs_using_it(project) -> None:
    root = project("several_mains")
    report = run_tests(root, _bad(root, "src/calc.c", "return a + b;", "return a + ;"), trusted=False)
    assert _statuses(report) == {"tests/test_calc.c": "build_failed", "tests/test_strutil.c": "passed"}
    calc = report.by_name()["tests/test_calc.c"]
    assert "src/calc.c did not compile" in calc.reason and calc.diagnostics[0].file == "src/calc.c"


def test_nothing_builds_gives_a_not_run_reason(project) -> None:
    root = project("include_unit")
    report = run_tests(root, _bad(root, "src/buf.c", "int s = 0;", "int s = ;"), trusted=False)
    assert _statuses(report) == {"tests/test_buf.c": "build_failed"}
    assert report.not_run_reason.startswith("no test program could be built")


@pytest.mark.parametrize(("shape", "good", "bad"), [
    ("cmake_ctest", {"calc_add": "passed", "calc_sub": "passed"}, {"calc_add": "passed", "calc_sub": "failed"}),
    ("meson_tests", {"calc_add": "passed", "calc_sub": "passed"}, {"calc_add": "passed", "calc_sub": "failed"}),
    ("autotools_check", {"test_add": "passed", "test_sub": "passed"}, {"test_add": "passed", "test_sub": "failed"}),
    ("make_check", {"make check": "passed"}, {"make check": "failed"}),
])
def test_trusted_project_builds_per_test(project, shape, good, bad) -> None:
    if shape in ("cmake_ctest", "meson_tests") and not shutil.which(shape.split("_")[0]):
        pytest.skip(f"{shape.split('_')[0]} is not installed")
    root = project(shape)
    unit = "calc.c" if shape == "make_check" else "src/calc.c"
    report = run_tests(root, {}, trusted=True)
    assert (report.kind, _statuses(report)) == (shape.split("_")[0].replace("autotools", "autotools"), good)
    assert _statuses(run_tests(root, _bad(root, unit, *BAD_SUB), trusted=True)) == bad
    # The unchanged tree again: the persistent build must not keep the bad body.
    assert _statuses(run_tests(root, {}, trusted=True)) == good


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_a_failed_project_build_never_reports_an_old_binary(project) -> None:
    root = project("cmake_ctest")
    assert _statuses(run_tests(root, {}, trusted=True)) == {"calc_add": "passed", "calc_sub": "passed"}
    broken = run_tests(root, _bad(root, "src/calc.c", "return a - b;", "return a - ;"), trusted=True)
    assert _statuses(broken) == {"calc_add": "build_failed", "calc_sub": "build_failed"}
    assert "did not build" in broken.not_run_reason


def test_untrusted_runs_no_project_command(project, build_cache: Path) -> None:
    root = project("make_check")
    untrusted = run_tests(root, {}, trusted=False)
    assert untrusted.kind == "direct" and _statuses(untrusted) == {"tests/test_calc.c": "passed"}
    assert not any("MAKE-CHECK-RAN" in p.output for p in untrusted.programs)
    assert not build_dir_for(root).exists()  # not even the project's sandbox copy was made
    trusted = run_tests(root, {}, trusted=True)
    assert "MAKE-CHECK-RAN" in trusted.programs[0].output
    assert (build_dir_for(root) / "make-check-ran.marker").exists()  # inside the sandbox copy only
    assert not (root / "make-check-ran.marker").exists()


def test_a_hanging_test_is_reported_as_timeout(project) -> None:
    root = project("several_mains")
    changed = _bad(root, "src/strutil.c", "while (s[n]) n++;", "while (s[n]) n += 0;")
    report = run_tests(root, changed, trusted=False, limits=Limits(cpu_seconds=2, wall_seconds=3.0))
    assert _statuses(report) == {"tests/test_calc.c": "passed", "tests/test_strutil.c": "timeout"}
    assert report.timed_out


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
def test_trusted_rebuild_after_a_one_file_change_recompiles_one_unit(project) -> None:
    root = project("cmake_ctest")
    run_tests(root, {}, trusted=True)
    report = run_tests(root, _bad(root, "src/calc.c", *BAD_SUB), trusted=True)
    built = re.findall(r"Building C object (\S+)", report.by_name()["calc_sub"].output)
    assert built == ["CMakeFiles/calc.dir/src/calc.c.o"]


def test_a_busy_build_dir_falls_back_to_a_fresh_copy(project) -> None:
    from cra.pipeline.sandbox.build_cache import locked_build_dir

    root = project("make_check")
    with locked_build_dir(root) as held:
        assert held is not None
        report = run_tests(root, {}, trusted=True)  # another job holds the copy: this one does not wait
    assert _statuses(report) == {"make check": "passed"}
    assert not (held / "make-check-ran.marker").exists()


def test_copies_unused_for_long_are_pruned_when_another_job_builds(project, build_cache: Path) -> None:
    from cra.pipeline.sandbox.build_cache import STALE_SECONDS, build_dir_for, locked_build_dir

    old, fresh = project("make_check"), project("cmake_ctest")
    with locked_build_dir(old) as held:
        assert held is not None and held.is_dir()
    lock = held.parent / f"{held.name}.lock"
    long_ago = lock.stat().st_mtime - STALE_SECONDS - 60
    os.utime(lock, (long_ago, long_ago))
    with locked_build_dir(fresh) as current:
        assert current == build_dir_for(fresh)
    assert not held.exists() and not lock.exists()
    assert current.is_dir()  # the job's own copy stays
