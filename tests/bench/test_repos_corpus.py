"""The `repos` suite's corpus layer: the manifest's shape, the blanking of a function, fetching from the cache and
the verifier, all offline (a small C project made here stands in for a fetched library). The checks against the
real Debian source packages need the network and a deb-src entry: they run only when asked for."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from cra.bench.quality_tasks import QualityError
from cra.bench.repos import fetch as fetch_mod
from cra.bench.repos import manifest as m
from cra.bench.repos import verify as v
from cra.bench.repos.blank import blank, blank_quiet, parameter_names
from cra.pipeline.context import parse_source
from cra.pipeline.context.symbols import FUNCTION

NETWORK_ENV = "CRA_BENCH_NETWORK"


# ---- the manifest ----------------------------------------------------------------------------------------------------
def test_manifest_has_enough_libraries_and_tasks():
    assert len(m.LIBRARIES) >= 10
    assert len(m.all_tasks()) >= 50
    assert all(lib.tasks for lib in m.LIBRARIES), "every library has tasks"


def test_manifest_names_and_tasks_are_unique():
    names = Counter(lib.name for lib in m.LIBRARIES)
    assert max(names.values()) == 1, names
    packages = Counter((lib.package, lib.version) for lib in m.LIBRARIES)
    assert max(packages.values()) == 1, packages
    ids = Counter(lib.task_id(task) for lib, task in m.all_tasks())
    assert max(ids.values()) == 1, [i for i, n in ids.items() if n > 1]


def test_manifest_spans_build_kinds_and_shapes():
    assert {lib.build for lib in m.LIBRARIES} == set(m.BUILD_KINDS)
    shapes = {shape for lib in m.LIBRARIES for shape in lib.shapes}
    assert shapes == set(m.SHAPES)
    for lib in m.LIBRARIES:
        assert set(lib.shapes) <= set(m.SHAPES), lib.name


@pytest.mark.parametrize("lib", m.LIBRARIES, ids=lambda lib: lib.name)
def test_library_entry_is_complete(lib: m.RepoLibrary):
    assert lib.package and lib.version and lib.test_command.strip()
    assert lib.build in m.BUILD_KINDS
    assert lib.stub in ("plain", "quiet")
    assert 0 < lib.baseline_seconds < lib.timeout_seconds
    assert lib.baseline_seconds < 120, "a library's whole test command should stay short"
    for task in lib.tasks:
        assert task.function != "main"
        assert not task.unit.startswith("/") and ".." not in Path(task.unit).parts
        assert Path(task.unit).suffix in (".c", ".h"), task.unit


def test_library_lookup():
    first = m.LIBRARIES[0]
    assert m.library(first.name) is first
    with pytest.raises(KeyError, match="no library"):
        m.library("no-such-library")


# ---- blanking ----------------------------------------------------------------------------------------------------------
SNIPPET = """\
#include <stddef.h>

static int weight(const char *s, size_t n, int (*score)(int), unsigned char table[16])
{
    int total = 0;
    for (size_t i = 0; i < n; i++)
        total += score(s[i]) + table[i % 16];
    return total;
}

void reset(int *counts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        counts[i] = 0;
}

char *find(char *s, int c)
{
    while (*s && *s != c)
        s++;
    return *s ? s : NULL;
}

int old_style(a, b)
    int a;
    long b;
{
    return a + (int)b;
}
"""


def _function(text: str, name: str):
    index = parse_source("unit.c", text.encode())
    return next(s for s in index.symbols if s.kind == FUNCTION and s.name == name)


@pytest.mark.parametrize("name", ["weight", "reset", "find", "old_style"])
def test_blank_replaces_only_that_body_with_a_stub(name: str):
    blanked = blank(SNIPPET, name)
    symbol = _function(blanked, name)
    assert symbol.is_stub
    for other in {"weight", "reset", "find", "old_style"} - {name}:
        assert _function(blanked, other).text == _function(SNIPPET, other).text
    assert ("return 0;" in symbol.text) == (name != "reset")


def test_blank_quiet_casts_every_parameter_to_void():
    blanked = blank_quiet(SNIPPET, "weight")
    body = _function(blanked, "weight").text
    for param in ("s", "n", "score", "table"):
        assert f"(void){param};" in body
    assert "return 0;" in body and "total" not in body
    assert "(void)counts;" in _function(blank_quiet(SNIPPET, "reset"), "reset").text


def test_parameter_names():
    assert parameter_names("int f(void)", "f") == []
    assert parameter_names("int f(const char *s, size_t n)", "f") == ["s", "n"]
    assert parameter_names("int f(int (*cb)(int, char *), unsigned char buf[16], ...)", "f") == ["cb", "buf"]
    assert parameter_names("static inline struct x *f(struct x *const self)", "f") == ["self"]


def test_blank_refuses_missing_or_repeated_functions():
    with pytest.raises(QualityError, match="no definition"):
        blank(SNIPPET, "absent")
    twice = "#ifdef A\nint g(void) { return 1; }\n#else\nint g(void) { return 2; }\n#endif\n"
    with pytest.raises(QualityError, match="defined 2 times"):
        blank(twice, "g")


# ---- fetching ------------------------------------------------------------------------------------------------------------
def test_cache_root_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fetch_mod.cache_root() == tmp_path / "cra" / "repos"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert fetch_mod.cache_root() == Path.home() / ".cache" / "cra" / "repos"


def test_tree_name_keeps_versions_apart():
    assert fetch_mod.tree_name("zlib", "1:1.2.13.dfsg-1") == "zlib-1_1.2.13.dfsg-1"
    assert fetch_mod.tree_name("cjson", "1.7.15-1+deb12u4") == "cjson-1.7.15-1+deb12u4"


def test_deb_src_detection(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    assert not fetch_mod.deb_src_configured(tmp_path)
    (tmp_path / "sources.list.d" / "off.sources").write_text(
        "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n")
    assert not fetch_mod.deb_src_configured(tmp_path)
    (tmp_path / "sources.list.d" / "src.sources").write_text(
        "Types: deb deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n")
    assert fetch_mod.deb_src_configured(tmp_path)
    (tmp_path / "sources.list.d" / "src.sources").unlink()
    (tmp_path / "sources.list").write_text("deb-src http://deb.debian.org/debian bookworm main\n")
    assert fetch_mod.deb_src_configured(tmp_path)


def test_fetch_uses_the_cache_without_apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    tree = tmp_path / fetch_mod.tree_name("demo", "1:2.0-1")
    tree.mkdir()

    def no_apt(*args, **kwargs):
        raise AssertionError("apt must not run for a cached tree")

    monkeypatch.setattr(fetch_mod.subprocess, "run", no_apt)
    assert fetch_mod.fetch("demo", "1:2.0-1", tmp_path) == tree
    assert fetch_mod.cached_tree("demo", "9.9", tmp_path) is None


def test_fetch_without_apt_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(fetch_mod.shutil, "which", lambda _tool: None)
    with pytest.raises(fetch_mod.FetchError, match="apt-get is not installed"):
        fetch_mod.fetch("demo", "1.0-1", tmp_path)


def test_fetch_explains_a_missing_deb_src_entry():
    output = "E: You must put some 'deb-src' URIs in your sources.list\n"
    message = fetch_mod._explain("demo", "1.0-1", output)
    assert "deb-src" in message and "apt-get update" in message


# ---- the verifier on a small project made here --------------------------------------------------------------------------
UNIT = """\
#include "strutil.h"

int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++)
        if (*s == c)
            n++;
    return n;
}

int unused_twice(int v)
{
    return 2 * v;
}
"""

HEADER = "int count_char(const char *s, char c);\nint unused_twice(int v);\n"

TEST = """\
#include <stdio.h>
#include "strutil.h"

int main(void)
{
    if (count_char("banana", 'a') != 3) {
        puts("count_char failed");
        return 1;
    }
    puts("ok");
    return 0;
}
"""


@pytest.fixture()
def demo_library(tmp_path: Path) -> tuple[m.RepoLibrary, Path]:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) on this machine")
    cache = tmp_path / "cache"
    tree = cache / fetch_mod.tree_name("demo", "1.0-1")
    tree.mkdir(parents=True)
    (tree / "strutil.c").write_text(UNIT)
    (tree / "strutil.h").write_text(HEADER)
    (tree / "test.c").write_text(TEST)
    lib = m.RepoLibrary(
        name="demo", package="demo", version="1.0-1", build="plain",
        test_command="cc -Wall -Werror -o t test.c strutil.c && ./t", shapes=[], baseline_seconds=1.0,
        timeout_seconds=60.0, tasks=m.T("strutil.c", "count_char", "unused_twice"))
    return lib, cache


def test_verify_detects_a_tested_function_and_reports_an_untested_one(demo_library):
    lib, cache = demo_library
    result = v.verify_library(lib, cache=str(cache), jobs=1)
    assert result.baseline_ok and result.baseline_seconds > 0
    by_name = {t.function: t for t in result.tasks}
    assert by_name["count_char"].detected and by_name["count_char"].how == "tests-failed"
    assert not by_name["unused_twice"].detected and by_name["unused_twice"].how == "missed"
    # the cache is never built in or edited
    assert sorted(p.name for p in (cache / "demo-1.0-1").iterdir()) == ["strutil.c", "strutil.h", "test.c"]
    assert (cache / "demo-1.0-1" / "strutil.c").read_text() == UNIT
    summary = v.summary([result])
    assert (summary["tasks"], summary["detected"]) == (2, 1)
    assert "1/2 tasks detected" in v.table([result])


def test_verify_does_not_count_a_stub_that_only_breaks_the_build(demo_library):
    lib, cache = demo_library
    werror = m.RepoLibrary(**{**{f: getattr(lib, f) for f in lib.__struct_fields__},
                              "test_command": "cc -Wall -Wextra -Werror -o t test.c strutil.c && ./t",
                              "tasks": m.T("strutil.c", "unused_twice")})
    plain = v.verify_library(werror, cache=str(cache), jobs=1)
    assert plain.tasks[0].how == "build-failed" and not plain.tasks[0].detected
    quiet = m.RepoLibrary(**{**{f: getattr(werror, f) for f in werror.__struct_fields__}, "stub": "quiet"})
    assert v.verify_library(quiet, cache=str(cache), jobs=1).tasks[0].how == "missed"


def test_verify_reports_a_failing_baseline(demo_library):
    lib, cache = demo_library
    broken = m.RepoLibrary(**{**{f: getattr(lib, f) for f in lib.__struct_fields__}, "test_command": "exit 3"})
    result = v.verify_library(broken, cache=str(cache), jobs=1)
    assert not result.baseline_ok and result.tasks == [] and "exit 3" in result.detail


def test_run_command_kills_the_whole_group_on_timeout(tmp_path: Path):
    result = v.run_command("sleep 30 & sleep 30; wait", tmp_path, timeout=0.5, env=dict(os.environ))
    assert result.returncode is None and not result.passed and result.seconds < 10


# ---- against Debian (network) ----------------------------------------------------------------------------------------
def _real(name: str) -> m.RepoLibrary:
    lib = m.library(name)
    if fetch_mod.cached_tree(lib.package, lib.version) is not None:
        return lib
    if os.environ.get(NETWORK_ENV) != "1":
        pytest.skip(f"needs the network: set {NETWORK_ENV}=1 to fetch {lib.package} {lib.version} from Debian")
    if shutil.which("apt-get") is None or not fetch_mod.deb_src_configured():
        pytest.skip("needs APT with a deb-src entry (see cra.bench.repos.fetch)")
    try:
        fetch_mod.fetch(lib.package, lib.version)
    except fetch_mod.FetchError as exc:
        pytest.skip(f"cannot fetch {lib.package}: {exc}")
    return lib


@pytest.mark.slow
def test_real_library_tree_holds_every_task():
    lib = _real("dsfmt")
    tree = fetch_mod.fetch(lib.package, lib.version)
    for task in lib.tasks:
        text = (tree / task.unit).read_text(errors="surrogateescape")
        assert _function(blank(text, task.function, path=task.unit), task.function).is_stub


@pytest.mark.slow
def test_real_library_verifies():
    if shutil.which("cc") is None:
        pytest.skip("no C compiler (cc) on this machine")
    lib = _real("dsfmt")
    result = v.verify_library(lib, jobs=2)
    assert result.baseline_ok, result.detail
    assert all(t.detected for t in result.tasks), [(t.function, t.how) for t in result.tasks]


@pytest.mark.parametrize("argv, message", [
    (["--library", "no-such-lib"], "no library 'no-such-lib'"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--task", "a.c:f"], "--task needs exactly one --library"),
    (["--library", "zlib", "--task", "just_a_name"], "--task takes UNIT:FUNCTION"),
    (["--library", "zlib", "--task", "a.c:"], "--task takes UNIT:FUNCTION"),
])
def test_verify_refuses_bad_options_before_fetching(argv: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from cra.bench.repos import verify

    assert verify.main(argv) == 2
    assert message in capsys.readouterr().err
