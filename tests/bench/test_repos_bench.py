"""`cra bench quality --suite repos`, offline: option errors, the per-task path on a tiny local "library" (a
Makefile project made here stands in for a fetched Debian package; real gcc, make, sandbox and, for the pipeline
and naive columns, the real `cra run` subprocess and engine on the tiny generated model), and the report's target
maths."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cra.bench import quality
from cra.bench.quality_report import StageStats
from cra.bench.repos import report as rr
from cra.bench.repos import run as rrun
from cra.bench.repos.manifest import RepoLibrary, RepoTask

CALC_H = "#ifndef CALC_H\n#define CALC_H\nint clamp(int v, int lo, int hi);\nint twice(int v);\n#endif\n"
CALC_C = """#include "calc.h"

/* v limited to [lo, hi]. */
int clamp(int v, int lo, int hi)
{
    if (v < lo)
        return lo;
    if (v > hi)
        return hi;
    return v;
}

int twice(int v)
{
    return 2 * v;
}
"""
TEST_CALC = """#include <assert.h>
#include <stdio.h>
#include "calc.h"

int main(void)
{
    assert(clamp(5, 0, 3) == 3);
    assert(clamp(-1, 0, 3) == 0);
    assert(clamp(2, 0, 3) == 2);
    assert(twice(4) == 8);
    puts("ok");
    return 0;
}
"""
MAKEFILE = "test: test_calc\n\t./test_calc\n\ntest_calc: test_calc.c calc.c calc.h\n\tcc -o test_calc test_calc.c calc.c\n"

MINI = RepoLibrary(name="mini", package="mini-calc", version="1.0-1", build="make", test_command="make test",
                   shapes=[], baseline_seconds=0.2, timeout_seconds=60.0, tasks=[RepoTask("calc.c", "clamp")])


@pytest.fixture()
def mini_tree(tmp_path: Path) -> Path:
    root = tmp_path / "pristine" / "mini-calc-1.0"
    root.mkdir(parents=True)
    for name, text in (("calc.h", CALC_H), ("calc.c", CALC_C), ("test_calc.c", TEST_CALC), ("Makefile", MAKEFILE)):
        (root / name).write_text(text)
    return root


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    return parser.parse_args(["--suite", "repos", *argv])


# ---- options -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (["--columns", "oracle,fancy"], "unknown column 'fancy'"),
    (["--columns", ","], "--columns: empty"),
    (["--library", "nolib"], "no library 'nolib' in the repos manifest"),
    (["--task", "cjson"], "give LIBRARY:FUNCTION"),
    (["--task", "nolib:f"], "no library 'nolib'"),
    (["--task", "cjson:no_such_function"], "cjson has no task on no_such_function"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--time-budget", "0"], "--time-budget must be positive"),
    (["--only", "implement"], "--only: not an option of --suite repos"),
    (["--ab", "tier-0.5b-vs-1.5b"], "--ab: not an option of --suite repos"),
    (["--model", "qwen2.5-coder-0.5b"], "--model: not an option of --suite repos"),
    (["--library", "cjson", "--task", "zlib:compress2"], "no task selected"),
])
def test_bad_options_are_clear_errors_with_exit_2(argv: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert quality.main(_args(*argv)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_repos_options_on_the_default_suite_and_an_unknown_suite_are_refused(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    assert quality.main(parser.parse_args(["--library", "cjson", "--columns", "oracle"])) == 2
    assert "--library, --columns: not an option of --suite pypi" in capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "cra.clients.cli", "bench", "quality", "--suite", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice: 'nope'" in done.stderr


def test_selection_narrows_by_library_task_and_limit() -> None:
    chosen = rrun.select(["cjson", "zlib"], None, None)
    assert {lib.name for lib, _ in chosen} == {"cjson", "zlib"} and len(chosen) == 12
    chosen = rrun.select(None, ["zlib:gzputs", "cjson:parse_hex4"], None)
    assert [(lib.name, t.function) for lib, t in chosen] == [("zlib", "gzputs"), ("cjson", "parse_hex4")]
    assert len(rrun.select(None, None, 5)) == 5
    assert rrun.parse_columns("naive,oracle") == ["oracle", "naive"]  # the suite's own order


# ---- the per-task path on a local fixture library ----------------------------------------------------------------
def test_oracle_column_accepts_the_original_body_on_a_fixture_library(mini_tree: Path) -> None:
    options = rrun.RepoRunOptions(columns=["oracle"])
    report = rrun.run_suite([(MINI, MINI.tasks[0])], options, trees={"mini": mini_tree})
    json.dumps(report)
    assert report["tasks_run"] == 1 and report["not_run"] == []
    (row,) = report["rows"]
    assert [c["column"] for c in row["cells"]] == ["oracle-untrusted", "oracle-trusted"]
    for cell in row["cells"]:
        assert cell["passed"] is True and cell["cra_kind"] == "ok" and cell["compiled"] is True, cell
        assert cell["seconds"] > 0
    # Untrusted, cra builds test_calc.c itself and runs it: the original body passes its tests.
    assert row["cells"][0]["cra_tests_passed"] is True
    assert report["columns"]["oracle-untrusted"]["passed_with_cra_tests"] == 1
    assert report["oracle_rejections"] == []
    assert report["targets"]["oracle_untrusted_accept"] == {"target": ">= 98%", "value": 1.0, "met": True}
    # The pristine tree is never touched: the task ran in temp copies.
    assert (mini_tree / "calc.c").read_text() == CALC_C and not (mini_tree / "test_calc").exists()


def test_the_judge_tells_the_blanked_tree_from_the_original(mini_tree: Path, tmp_path: Path) -> None:
    prep = rrun._prepare(mini_tree, tmp_path / "copy", MINI, MINI.tasks[0])
    assert "return 0;" in prep.blanked and "return hi" not in prep.blanked and prep.original == CALC_C
    result, kind = rrun.judge(MINI, prep.tree, jobs=1)
    assert kind == "tests-failed" and not result.passed
    (prep.tree / "calc.c").write_text(CALC_C.replace("int twice(int v)\n{", "int twice(int v)\n{\n    nope;"))
    assert rrun.judge(MINI, prep.tree, jobs=1)[1] == "build-failed"
    (prep.tree / "calc.c").write_text(prep.original)
    assert rrun.judge(MINI, prep.tree, jobs=1)[1] == "passed"


def test_a_library_that_cannot_be_fetched_says_why_in_its_rows(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no apt-get: fetching must fail, and say so
    options = rrun.RepoRunOptions(columns=["oracle"], cache=str(tmp_path / "cache"))
    report = rrun.run_suite([(MINI, MINI.tasks[0])], options)
    (row,) = report["rows"]
    assert row["cells"] == [] and row["error"].startswith("fetch failed: apt-get is not installed")
    assert report["not_run"] == [{"task": "repos:mini:calc.c:clamp", "reason": row["error"]}]
    assert "fetch failed" in rr.markdown(report)


@pytest.mark.slow
def test_pipeline_and_naive_columns_with_the_tiny_model(mini_tree: Path, long_tiny_model: Path) -> None:
    from cra.pipeline.engine import LocalEngine

    # The tree as found carries a cra.toml naming the tiny model (what `cra run` then uses, with no flags).
    roles = "".join(f'[models.{r}]\nmodel = "{long_tiny_model}"\ncontext_length = 8192\n'
                    for r in ("router", "validation", "summarization", "reasoning", "coding"))
    (mini_tree / "cra.toml").write_text(roles + '[context]\nbudget_tokens = 120\n[stages.implement]\nmax_tokens = 48\n'
                                        '[validation]\nmax_rounds = 1\n')
    options = rrun.RepoRunOptions(columns=["untrusted", "naive"], pipeline_timeout=300)
    report = rrun.run_suite([(MINI, MINI.tasks[0])], options, trees={"mini": mini_tree},
                            naive=rrun.NaiveRunner(LocalEngine()))
    (row,) = report["rows"]
    cells = {c["column"]: c for c in row["cells"]}
    assert set(cells) == {"untrusted", "naive"}
    pipe = cells["untrusted"]
    # A random-weight model cannot write clamp: cra refuses its attempts, writes nothing, and the library's own
    # tests (still on the stub) fail; the call log of the copy holds its calls and the adjustment rounds.
    assert pipe["cra_ok"] is False and pipe["written"] is False and pipe["passed"] is False, pipe
    assert pipe["judge"] == "tests-failed" and pipe["reason"].startswith("cra: ")
    assert pipe["stages"]["implement"]["calls"] >= 1 and pipe["rounds"] is not None
    assert pipe["tokens_in"] == sum(s["tokens_in"] for s in pipe["stages"].values()) > 0
    naive = cells["naive"]
    assert naive["stages"]["naive"]["calls"] == 1 and naive["tokens_in"] > 0 and naive["passed"] is False
    assert report["columns"]["untrusted"]["tasks"] == 1
    assert report["targets"]["untrusted_minus_naive_points"]["value"] == 0.0
    assert report["targets"]["rounds_on_baseline_failures"]["value"] == "not measured"


# ---- the report's maths ----------------------------------------------------------------------------------------------
def _cell(column: str, passed: bool, compiled: bool | None = True, **extra: object) -> rrun.Cell:
    return rrun.Cell(column=column, passed=passed, compiled=compiled, seconds=1.0, **extra)  # type: ignore[arg-type]


def _rows(cells_per_column: dict[str, list[rrun.Cell]]) -> list[rrun.TaskRow]:
    n = max(len(v) for v in cells_per_column.values())
    return [rrun.TaskRow(task=f"repos:lib:u.c:f{i}", library="lib", build="make", shapes=[], unit="u.c",
                         function=f"f{i}", cells=[v[i] for v in cells_per_column.values() if i < len(v)])
            for i in range(n)]


def test_targets_from_column_rates() -> None:
    rows = _rows({
        "oracle-untrusted": [_cell("oracle-untrusted", i != 0, cra_kind="ok" if i else "test",
                                   cra_verdict="" if i else "compiled; tests failed") for i in range(50)],
        "oracle-trusted": [_cell("oracle-trusted", i != 3) for i in range(50)],
        "untrusted": [_cell("untrusted", i < 25, compiled=i < 47, rounds=1, tokens_in=100,
                            stages={"implement": StageStats(calls=2, tokens_in=100, tokens_out=10)})
                      for i in range(50)],
        "naive": [_cell("naive", i < 10) for i in range(50)],
    })
    report = rr.summarize_suite(rows, ["oracle", "untrusted", "naive"])
    t = report["targets"]
    assert t["oracle_untrusted_accept"] == {"target": ">= 98%", "value": 0.98, "met": True}
    assert t["oracle_trusted_accept"]["value"] == 0.98 and t["oracle_trusted_accept"]["met"] is False
    assert t["untrusted_pass_rate"] == {"target": ">= 50%", "value": 0.5, "met": True}
    assert t["untrusted_minus_naive_points"] == {"target": ">= 30", "value": 30.0, "met": True}
    assert t["untrusted_compile_rate"]["value"] == 0.94 and t["untrusted_compile_rate"]["met"] is False
    assert t["trusted_compile_rate"]["met"] is None  # not run
    assert t["rounds_on_baseline_failures"]["value"] == "not measured"
    col = report["columns"]["untrusted"]
    assert col["rounds"] == 50 and col["stages"]["implement"]["calls"] == 100 and col["tokens_in_per_task"] == 100
    assert [(r["task"], r["column"], r["kind"]) for r in report["oracle_rejections"]] == [
        ("repos:lib:u.c:f0", "oracle-untrusted", "test"), ("repos:lib:u.c:f3", "oracle-trusted", "")]
    report.update(tasks_run=50, tasks_requested=50, wall_seconds=1.0)
    text = rr.markdown(report)
    assert "| untrusted | 50 | 25 (50%) | 0 | 94% | 1.0 | 100.0 | 0.0 | 50 |" in text
    assert "| lib:f0 | fail 1s | pass 1s | pass r1 1s | pass 1s | compiled; tests failed |" in text
    assert "| untrusted_minus_naive_points >= 30 | 30.0 | True |" in text


def test_rounds_on_baseline_failures_count_once_recorded() -> None:
    rows = _rows({"untrusted": [_cell("untrusted", True, rounds=1, baseline_rounds=0),
                                _cell("untrusted", False, rounds=2, baseline_rounds=1)]})
    report = rr.summarize_suite(rows, ["untrusted"])
    t = report["targets"]
    assert t["rounds_on_baseline_failures"] == {"target": "= 0", "value": 1, "met": False}
    assert t["untrusted_minus_naive_points"]["met"] is None  # no naive column
    report.update(tasks_run=2, tasks_requested=2, wall_seconds=3.0)
    assert "| lib:f1 | untrusted | False | True | 1 | 2 (1) |  | " in rr.markdown(report)


def test_rounds_on_a_failure_the_original_body_also_gets_are_counted_against_the_oracle() -> None:
    reasons = ["attempt 1 failed: compiled; tests failed (unity via gcc (direct build)): multiple definition",
               "attempt 2 failed: does not compile: u.c:3:5: error: 'x' undeclared"]
    untrusted = _cell("untrusted", False, rounds=2, round_reasons=reasons)
    trusted = _cell("trusted", False, rounds=1, round_reasons=reasons[1:])
    cells = [_cell("oracle-untrusted", False, cra_kind="test"), _cell("oracle-trusted", True, cra_kind="ok"),
             untrusted, trusted]
    rrun.count_baseline_rounds(cells)
    # Untrusted: the original body fails cra's tests too, so the round after a test failure was not the change's
    # fault; the round after the model's own compile error was. Trusted: the original passes, so none.
    assert (untrusted.baseline_rounds, trusted.baseline_rounds) == (1, 0)
    alone = _cell("untrusted", False, rounds=1, round_reasons=reasons[:1])
    rrun.count_baseline_rounds([alone])
    assert alone.baseline_rounds is None  # without the oracle it is not measured
    assert [rrun.reason_kind(r) for r in reasons] == ["test", "compile"]
