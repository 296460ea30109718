"""`cra bench quality`: task construction, judging, the naive splice and the report, on a small C project made
here (no network), with real gcc, the real sandbox and, where a model is needed, the tiny generated GGUF."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cra.bench import quality
from cra.bench import quality_tasks as qt
from cra.bench.quality_naive import extract_definition, fit_file, splice_answer
from cra.bench.quality_report import Row, side_summary, targets

UNIT = """\
#include <stddef.h>
#include "strutil.h"

/** Number of times `c` occurs in the NUL-terminated string `s`; 0 for NULL. */
size_t count_char(const char *s, char c)
{
    size_t n = 0;
    if (s == NULL)
        return 0;
    for (; *s; s++)
        if (*s == c)
            n++;
    return n;
}

/** `v` limited to [lo, hi]. */
int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/** Not called by the tests. */
int unused_twice(int v)
{
    return 2 * v;
}
"""

HEADER = """\
#ifndef STRUTIL_H
#define STRUTIL_H
#include <stddef.h>
size_t count_char(const char *s, char c);
int clamp(int v, int lo, int hi);
int unused_twice(int v);
#endif
"""

TEST_PROGRAM = """\
#include <assert.h>
#include <stdio.h>
#include "strutil.h"

int main(void)
{
    assert(count_char("banana", 'a') == 3);
    assert(count_char("", 'a') == 0);
    assert(count_char(NULL, 'a') == 0);
    assert(clamp(5, 0, 3) == 3);
    assert(clamp(-1, 0, 3) == 0);
    assert(clamp(2, 0, 3) == 2);
    puts("all passed");
    return 0;
}
"""

MINI = qt.Library(name="mini", package="mini-strutil", version="1.0", registry="pypi", archive_root="mini",
                  headers=["*.h"], flags=["-std=c11"], units=[qt.Unit("strutil.c", "test/test_strutil.c")])

GOOD_CLAMP = "int clamp(int v, int lo, int hi)\n{\n    if (v < lo) return lo;\n    if (v > hi) return hi;\n    return v;\n}"
WRONG_CLAMP = "int clamp(int v, int lo, int hi)\n{\n    (void)hi;\n    return v < lo ? lo : v;\n}"


@pytest.fixture()
def mini_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "mini"
    (root / "test").mkdir(parents=True)
    (root / "strutil.c").write_text(UNIT)
    (root / "strutil.h").write_text(HEADER)
    (root / "test" / "test_strutil.c").write_text(TEST_PROGRAM)
    monkeypatch.setitem(qt.LIBRARIES, "mini", MINI)
    return root


def _ws(mini_root: Path, tmp_path: Path, function: str, kind: str = "implement") -> qt.TaskWorkspace:
    spec = qt.TaskSpec(kind, "mini", "strutil.c", function)
    return qt.build_workspace(spec, MINI, mini_root, tmp_path / f"ws-{kind}-{function}")


def test_blanking_writes_a_stub_and_the_real_tests_then_fail(mini_root: Path, tmp_path: Path) -> None:
    ws = _ws(mini_root, tmp_path, "clamp")
    on_disk = (Path(ws.root) / "src" / "strutil.c").read_text()
    assert on_disk == ws.blanked
    stub = qt.find_function(ws.blanked, "clamp")
    assert stub.is_stub  # the pipeline's locate step takes it as a function to implement
    assert "return v < lo" not in ws.blanked and "count_char" in ws.blanked
    assert qt.confirm(ws) is None
    assert qt.judge_unit(ws, ws.original) == qt.Judgement(compiled=True, passed=True)
    assert qt.judge_unit(ws, ws.blanked).passed is False


def test_judge_tells_a_correct_a_wrong_and_a_broken_implementation_apart(mini_root: Path, tmp_path: Path) -> None:
    ws = _ws(mini_root, tmp_path, "clamp")
    good = qt.judge_unit(ws, qt.splice_function(ws.blanked, "clamp", GOOD_CLAMP))
    wrong = qt.judge_unit(ws, qt.splice_function(ws.blanked, "clamp", WRONG_CLAMP))
    broken = qt.judge_unit(ws, qt.splice_function(ws.blanked, "clamp", "int clamp(int v, int lo, int hi)\n{\n  return v <\n}"))
    assert (good.compiled, good.passed) == (True, True)
    assert (wrong.compiled, wrong.passed) == (True, False)
    assert "Assertion" in wrong.detail or "exit" in wrong.detail
    assert (broken.compiled, broken.passed) == (False, False)


def test_a_function_the_tests_do_not_exercise_is_dropped(mini_root: Path, tmp_path: Path) -> None:
    ws = _ws(mini_root, tmp_path, "unused_twice")
    reason = qt.confirm(ws)
    assert reason is not None and "still pass" in reason


def test_void_function_gets_an_empty_stub_and_duplicates_are_refused() -> None:
    text = "void reset(int *p)\n{\n    *p = 0;\n}\n#ifdef FAST\nint f(void) { return 1; }\n#else\nint f(void) { return 2; }\n#endif\n"
    assert "void reset(int *p)\n{\n}" in qt.blank_function(text, "reset")
    with pytest.raises(qt.QualityError, match="defined 2 times"):
        qt.blank_function(text, "f")
    with pytest.raises(qt.QualityError, match="no definition"):
        qt.blank_function(text, "missing")


def test_naive_answer_is_parsed_spliced_and_judged(mini_root: Path, tmp_path: Path) -> None:
    ws = _ws(mini_root, tmp_path, "clamp")
    answer = f"Sure! Here is the implementation:\n\n```c\n#include <stdio.h>\n\n{GOOD_CLAMP}\n```\n\nIt clamps v."
    assert extract_definition(answer, "clamp") == GOOD_CLAMP
    text, error = splice_answer(ws.blanked, "clamp", answer)
    assert error == "" and GOOD_CLAMP in text and text.count("int clamp(") == 1
    assert qt.judge_unit(ws, text).passed
    text, error = splice_answer(ws.blanked, "clamp", "```c\nint other(void) { return 1; }\n```")
    assert text == "" and "no definition of clamp" in error


def test_fit_file_keeps_the_target_and_cuts_the_rest() -> None:
    lines = [f"int v{i} = {i};" for i in range(200)]
    text = "\n".join(lines[:100] + ["int target(void)", "{", "    return 0;", "}"] + lines[100:])
    def count(t: str) -> int:
        return len(t.split())
    whole, cut = fit_file(text, "target", 10_000, count)
    assert (whole, cut) == (text, False)
    part, cut = fit_file(text, "target", 60, count)
    assert cut and "int target(void)" in part and count(part) <= 60
    assert "int v99 = 99;" in part and "int v100 = 100;" in part and "int v0 = 0;" not in part


def test_generated_tests_are_judged_on_original_and_blanked(mini_root: Path, tmp_path: Path) -> None:
    ws = _ws(mini_root, tmp_path, "clamp", kind="tests")
    assert (Path(ws.root) / "src" / "strutil.c").read_text() == ws.original  # tests are written for the real code
    catching = '#include <assert.h>\nint clamp(int v, int lo, int hi);\nint main(void) { assert(clamp(9, 0, 3) == 3); return 0; }\n'
    weak = '#include <assert.h>\nint clamp(int v, int lo, int hi);\nint main(void) { (void)clamp(1, 0, 3); return 0; }\n'
    broken = 'int main(void) { return clamp(1, 0 }\n'
    judged, caught = qt.judge_generated_tests(ws, catching)
    assert (judged.compiled, judged.passed, caught) == (True, True, True)
    judged, caught = qt.judge_generated_tests(ws, weak)
    assert (judged.compiled, judged.passed, caught) == (True, False, False)
    judged, caught = qt.judge_generated_tests(ws, broken)
    assert (judged.compiled, judged.passed, caught) == (False, False, None)


def test_summary_and_targets_from_rows() -> None:
    def row(mode: str, passed: bool, compiled: bool, kind: str = "implement") -> Row:
        return Row(side="main", task=f"{kind}:x:{mode}{passed}{compiled}", kind=kind, mode=mode, package="p",
                   version="1", file="f.c", function="f", compiled=compiled, passed=passed, seconds=2.0,
                   tokens_in=100, tokens_out=10, attempts=1)
    rows = [row("pipeline", True, True), row("pipeline", False, True), row("naive", False, True),
            row("naive", False, False), row("pipeline", True, True, "tests"), row("pipeline", False, False, "tests")]
    summary = side_summary(rows)
    assert summary["implement"]["pipeline"]["pass_rate"] == 0.5
    assert summary["implement"]["naive"]["compile_rate"] == 0.5
    assert summary["implement"]["pipeline_minus_naive_points"] == 50.0
    assert summary["tests"]["pipeline"]["compile_rate"] == 0.5
    t = targets(summary)
    assert t["pipeline_minus_naive_points"]["met"] is True
    assert t["generated_tests_compile_rate"] == {"target": ">= 0.9", "value": 0.5, "met": False}


def _args(tmp_path: Path, **extra: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    quality.add_arguments(parser)
    args = parser.parse_args(["--cache-dir", str(tmp_path / "cache"), "--json"])
    for key, value in extra.items():
        setattr(args, key, value)
    return args


@pytest.mark.slow
def test_report_shape_with_the_tiny_model(mini_root: Path, tmp_path: Path, long_tiny_model: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cra.pipeline.engine import LocalEngine

    monkeypatch.setattr(quality, "IMPLEMENT_TASKS", [qt.TaskSpec("implement", "mini", "strutil.c", "clamp"),
                                                     qt.TaskSpec("implement", "mini", "strutil.c", "unused_twice")])
    monkeypatch.setattr(quality, "TESTS_TASKS", [qt.TaskSpec("tests", "mini", "strutil.c", "count_char")])
    # The tiny model's window is 512 tokens: a small context budget and short answers keep prompts inside it.
    small = tmp_path / "small.toml"
    small.write_text('[context]\nbudget_tokens = 120\n[stages.implement]\nmax_tokens = 48\n'
                     '[stages.test_generation]\nmax_tokens = 64\n[validation]\nmax_rounds = 1\n')
    side = quality.Side(name="main", label="tiny", config_path=str(small),
                        models=quality.all_roles(str(long_tiny_model)))
    args = _args(tmp_path, model=str(long_tiny_model))
    report = quality.run(args, engine=LocalEngine(), source_roots={"mini": mini_root}, sides=[side])
    json.dumps(report)  # one JSON object
    assert report["tasks_requested"] == 3 and report["tasks_run"] == 2
    assert report["dropped"] == [{"task": "implement:mini:strutil.c:unused_twice",
                                  "reason": "the unit's tests still pass with the function blanked (they do not "
                                            "exercise it)"}]
    rows = report["rows"]
    assert {(r["kind"], r["mode"]) for r in rows} == {("implement", "pipeline"), ("implement", "naive"),
                                                      ("tests", "pipeline"), ("tests", "naive")}
    pipeline_impl = next(r for r in rows if r["kind"] == "implement" and r["mode"] == "pipeline")
    # A random-weight model cannot write clamp: the real tests say so, and its calls are in the stage totals.
    assert pipeline_impl["passed"] is False and pipeline_impl["attempts"] >= 1
    assert pipeline_impl["stages"]["implement"]["calls"] == pipeline_impl["attempts"]
    assert pipeline_impl["tokens_in"] == sum(s["tokens_in"] for s in pipeline_impl["stages"].values()) > 0
    naive_impl = next(r for r in rows if r["kind"] == "implement" and r["mode"] == "naive")
    assert naive_impl["stages"]["naive"]["calls"] == 1 and naive_impl["tokens_in"] > 0
    summary = report["sides"]["main"]
    assert summary["implement"]["pipeline"]["tasks"] == 1 and "pipeline_minus_naive_points" in summary["implement"]
    assert set(report["targets"]) == {"pipeline_minus_naive_points", "generated_tests_compile_rate"}
    # The markdown rendering of the same report names every row's task.
    from cra.bench.quality_report import markdown

    text = markdown(report)
    assert "implement:mini:strutil.c:clamp" in text and "| main | tests | pipeline |" in text


def test_bad_arguments_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(qt.QualityError, match="not available"):
        quality.resolve_model("no-such-model")
    args = _args(tmp_path, model=str(tmp_path / "m.gguf"), ab=["tier-9b"])
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    with pytest.raises(qt.QualityError, match="preset of"):
        quality.sides_for(args)
    args.ab = ["coder-vs-generalist"]
    with pytest.raises(qt.QualityError, match="--generalist"):
        quality.sides_for(args)
    args.ab = [str(tmp_path / "a.toml"), str(tmp_path / "b.toml")]
    with pytest.raises(qt.QualityError, match="is not a file"):
        quality.sides_for(args)
    args.ab = None
    args.function = ["no_such_function"]
    with pytest.raises(qt.QualityError, match="no task on no_such_function .tasks are on: .*add_be"):
        quality.run(args)
    args.function, args.call_timeout = ["add_be"], 0.0
    with pytest.raises(qt.QualityError, match="--call-timeout must be positive"):
        quality.run(args)


def test_ab_config_files_become_two_sides(mini_root: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    (tmp_path / "a.toml").write_text("[context]\nbudget_tokens = 800\n")
    (tmp_path / "b.toml").write_text("[context]\nbudget_tokens = 1600\n")
    args = _args(tmp_path, model=str(model), ab=[str(tmp_path / "a.toml"), str(tmp_path / "b.toml")])
    a, b = quality.sides_for(args)
    ws = _ws(mini_root, tmp_path, "clamp")
    ca, cb = quality.config_for(a, ws), quality.config_for(b, ws)
    assert (ca.context.budget_tokens, cb.context.budget_tokens) == (800, 1600)
    assert ca.models["coding"].model == str(model)  # the benchmark's model, as the files name none
    assert ca.validation.test_command == ws.test_command() and "-std=c11" in ca.validation.flags
    slow = quality.config_for(a, ws, 900.0)
    assert {m.default_timeout for m in slow.models.values()} == {900.0}
    assert slow.models["coding"].model == str(model)


def test_tasks_of_both_kinds_are_interleaved_and_limited() -> None:
    both = quality.select_tasks(None, 3)
    assert [t.kind for t in both] == ["implement", "implement", "tests", "implement", "tests", "tests"]
    assert quality.select_tasks("tests", None) == qt.TESTS_TASKS
    assert [t.kind for t in quality.select_tasks("implement", 2)] == ["implement", "implement"]
    picked = quality.select_tasks(None, None, ["add_be", "set_if_match"])
    assert {(t.kind, t.function) for t in picked} == {("implement", "add_be"), ("implement", "set_if_match"),
                                                     ("tests", "add_be"), ("tests", "set_if_match")}
