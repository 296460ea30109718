"""Implement, on scripted answers: a body that compiles and passes the project's tests; a compile error, an
adjustment round, then success; rounds exhausted; a body cut off or unparsable; cancellation between steps and
during a call. The call log's transitions, notes and call rows are checked on each path."""

from __future__ import annotations

from pathlib import Path

from pipeline_support import Runner, notes, states
from scripted_engine import ScriptedCall, ScriptedEngine

from cra.pipeline.calllog import CallLog
from cra.pipeline.engine import CallStats, CancelToken, Generation
from cra.pipeline.stages import adjustment as a4

GOOD = "    return a + b;\n}"
UNDECLARED = "    return a + c;\n}"  # compiles only if `c` existed
ADJUSTMENT = a4.Adjustment(diagnosis="`c` is not declared", focus="add the two parameters",
                           steps=["return a + b"])
ADD_TEST = """#include <assert.h>
int add(int a, int b);
int main(void) { assert(add(2, 3) == 5); return 0; }
"""


def with_add_test(workspace: Path) -> Path:
    (workspace / "tests").mkdir()
    (workspace / "tests" / "test_add.c").write_text(ADD_TEST)
    return workspace


def test_body_that_compiles_and_passes_the_tests(run: Runner, workspace: Path, log: CallLog,
                                                 engine: ScriptedEngine) -> None:
    engine.script("implement", GOOD)
    result = run(with_add_test(workspace), "implement", "point.c", "add")
    assert result.ok, result.error
    assert result.verdict.compiled is True and result.verdict.tests_passed is True
    assert result.verdict.message.startswith("compiled; tests passed")
    assert [e.new_text for e in result.edits] == ["{\n    return a + b;\n}"]
    assert (result.edits[0].start_line, result.edits[0].end_line) == (22, 24)  # the old body's braces
    assert "return a + b;" in result.new_text and "return 0;" not in result.new_text
    assert result.anchor_text is not None and result.anchor_text.startswith("int add(int a, int b)")
    assert result.diagnostics == []
    assert states(log, result.task_id) == ["locate", "context", "implement", "validate", "done"]
    assert any("task_analysis: exclude (rule" in n for n in notes(log, result.task_id))  # no instruction
    assert engine.stages() == ["implement"] and engine.unused() == {}
    assert engine.calls[0].params is not None and engine.calls[0].params.stop == ["\n}", "```"]
    (call,) = log.calls(task_id=result.task_id)
    assert call.stage == "implement" and call.response == "    return a + b;" and call.finish_reason == "stop"
    outcome = log.outcomes(task_id=result.task_id)[0]
    assert (outcome.edit_status, outcome.compiled, outcome.tests_passed) == ("proposed", True, True)


def test_no_tests_in_the_project_still_succeeds_on_a_compile(run: Runner, workspace: Path,
                                                             engine: ScriptedEngine) -> None:
    engine.script("implement", GOOD)
    result = run(workspace, "implement", "point.c", "add")
    assert result.ok and result.verdict.message == "compiled; no tests found"
    assert result.verdict.tests_passed is None


def test_compile_error_then_an_adjustment_round_then_success(run: Runner, workspace: Path, log: CallLog,
                                                             engine: ScriptedEngine) -> None:
    engine.script("implement", UNDECLARED, GOOD).script("adjustment", ADJUSTMENT)
    result = run(workspace, "implement", "point.c", "add", max_rounds=1)
    assert result.ok, result.error
    assert states(log, result.task_id) == ["locate", "context", "implement", "validate", "adjust", "implement",
                                           "validate", "done"]
    assert engine.stages() == ["implement", "adjustment", "implement"]
    round_notes = notes(log, result.task_id)
    assert any(n.startswith("attempt 1 failed: does not compile") and "'c' undeclared" in n for n in round_notes)
    assert any(n.startswith("round 1: compile failure; adjustment: include (default") and "focus: add the two" in n
               for n in round_notes)
    adjustment_prompt = engine.calls[1].prompt
    assert "return a + c;" in adjustment_prompt and "'c' undeclared" in adjustment_prompt
    retry_prompt = engine.calls[2].prompt
    assert "The previous attempt failed" in retry_prompt and "Diagnosis: `c` is not declared" in retry_prompt
    assert "previous attempt" not in engine.calls[0].prompt
    assert result.diagnostics == []  # the failed attempt's diagnostics do not outlive it
    assert [c.stage for c in log.calls(task_id=result.task_id, newest_first=False)] == \
        ["implement", "adjustment", "implement"]


def test_an_invented_name_gets_the_declared_names_meant_in_the_next_prompts(run: Runner, workspace: Path,
                                                                           engine: ScriptedEngine) -> None:
    header = workspace / "point.h"
    header.write_text(header.read_text().replace("int point_x", "#define POINT_ORIGIN_X 0\nint point_x"))
    engine.script("implement", "    return a + b + POINT_ORIGIN;\n}", GOOD).script("adjustment", ADJUSTMENT)
    result = run(workspace, "implement", "point.c", "add", max_rounds=1)
    assert result.ok, result.error
    hint = "`POINT_ORIGIN_X` (macro, point.h): #define POINT_ORIGIN_X 0"
    adjustment_prompt, retry_prompt = engine.calls[1].prompt, engine.calls[2].prompt
    assert "'POINT_ORIGIN' undeclared" in adjustment_prompt and hint in adjustment_prompt
    assert "`POINT_ORIGIN` is not declared" in retry_prompt and hint in retry_prompt


def test_the_prompt_names_an_older_dialect_the_project_builds_with(run: Runner, workspace: Path,
                                                                   engine: ScriptedEngine) -> None:
    engine.script("implement", GOOD, GOOD)
    assert run(workspace, "implement", "point.c", "add").ok
    assert "The project is C" not in engine.calls[0].prompt  # no build file names a standard: C11, said nowhere
    (workspace / "Makefile").write_text("CFLAGS = -std=c89 -pedantic\nall: point.o\n")
    assert run(workspace, "implement", "point.c", "add").ok
    assert "The project is C89 (ANSI C): declare every variable at the start of a block" in engine.calls[1].prompt


def test_rounds_exhausted_is_a_failure_verdict(run: Runner, workspace: Path, log: CallLog,
                                              engine: ScriptedEngine) -> None:
    engine.script("implement", UNDECLARED, UNDECLARED).script("adjustment", ADJUSTMENT)
    result = run(workspace, "implement", "point.c", "add", max_rounds=1)
    assert not result.ok and not result.cancelled
    assert result.error is not None and result.error.startswith("add: does not compile")
    assert "gave up after 2 attempts" in result.error
    assert result.verdict.compiled is False and "does not compile" in result.verdict.message
    assert result.edits == [] and result.new_text is None
    assert result.diagnostics and all(d.source == "compile" for d in result.diagnostics)
    assert any("'c' undeclared" in d.message and d.line == 23 for d in result.diagnostics)
    path = states(log, result.task_id)
    assert path == ["locate", "context", "implement", "validate", "adjust", "implement", "validate", "failed"]
    assert log.transitions(result.task_id)[-1]["note"] == result.error
    outcome = log.outcomes(task_id=result.task_id)[0]
    assert (outcome.edit_status, outcome.compiled, outcome.reason) == ("failed", False, result.error)


def test_failing_tests_with_no_rounds_left(run: Runner, workspace: Path, log: CallLog,
                                           engine: ScriptedEngine) -> None:
    engine.script("implement", "    return a - b;\n}")
    result = run(with_add_test(workspace), "implement", "point.c", "add", max_rounds=0)
    assert not result.ok and "gave up after 1 attempts" in (result.error or "")
    assert result.verdict.compiled is True and result.verdict.tests_passed is False
    assert result.verdict.message.startswith("compiled; tests failed")
    assert "adjust" not in states(log, result.task_id)
    assert engine.stages() == ["implement"]


def test_a_cut_off_body_is_retried_without_a4(run: Runner, workspace: Path, log: CallLog,
                                              engine: ScriptedEngine) -> None:
    cut = Generation(text="    if (a > 0) {\n        return a + b;", stats=CallStats(finish_reason="length"))
    engine.script("implement", cut, GOOD)
    result = run(workspace, "implement", "point.c", "add", max_rounds=1)
    assert result.ok, result.error
    assert engine.stages() == ["implement", "implement"]  # an incomplete body is not a compile failure: no A4
    assert any("adjustment: exclude (rule" in n for n in notes(log, result.task_id))
    assert "cut off before its closing brace" in engine.calls[1].prompt


def test_an_unparsable_body_that_the_compiler_rejects_too_is_a_syntax_failure(
        run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    engine.script("implement", "    for (;;\n}", "    for (;;\n}")
    result = run(workspace, "implement", "point.c", "add", max_rounds=1)
    assert not result.ok and "does not parse as C" in (result.error or "")
    assert states(log, result.task_id) == ["locate", "context", "implement", "validate", "adjust", "implement",
                                           "validate", "failed"]


def test_a_body_tree_sitter_cannot_parse_but_the_compiler_accepts_is_kept(
        run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    # zlib-style: a macro tree-sitter does not expand (`z_const`) reads as a syntax error; gcc is the authority.
    workspace.joinpath("zc.c").write_text("#define z_const const\n\nint first(const char *s)\n{\n    return 0;\n}\n")
    body = "    z_const char *p = s;\n    return p[0];\n}"
    engine.script("implement", body)
    result = run(workspace, "implement", "zc.c", "first", max_rounds=1)
    assert result.ok, result.error
    assert result.verdict.compiled is True
    assert "z_const char *p = s;" in result.new_text
    assert states(log, result.task_id) == ["locate", "context", "implement", "validate", "done"]


def test_a_macro_body_in_a_unit_gcc_cannot_check_is_not_refused_on_tree_sitters_word(
        run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    # fribidi-style: `if UNLIKELY (x)` is a syntax error to tree-sitter, and the unit includes a header only the
    # project's build generates, so gcc cannot look at it in cra's copy either. No compiler said it is wrong: the
    # body is offered, and the verdict says what was not checked.
    workspace.joinpath("cnt.c").write_text(
        '#include "gen_config.h"\n\nint count(const int *v, int len)\n{\n    return 0;\n}\n')
    engine.script("implement", "    int n = 0;\n    if UNLIKELY (len == 0)\n        return 0;\n"
                               "    while (len--)\n        n += *v++ != 0;\n    return n;\n}")
    result = run(workspace, "implement", "cnt.c", "count", max_rounds=1)
    assert result.ok, result.error
    assert result.verdict.compiled is None, result.verdict
    assert result.verdict.message.startswith("compile not checked") and "gen_config.h" in result.verdict.message
    assert "tree-sitter reads a syntax error" in result.verdict.message
    assert "if UNLIKELY (len == 0)" in result.new_text
    assert states(log, result.task_id) == ["locate", "context", "implement", "validate", "done"]


def test_cancellation_between_steps(run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    cancel = CancelToken()

    def progress(stage: str, percent: int) -> None:
        if stage == "context":
            cancel.cancel()  # the context step finishes; the loop stops before the model is called

    engine.script("implement", GOOD)
    result = run(workspace, "implement", "point.c", "add", cancel=cancel, progress=progress)
    assert result.cancelled and not result.ok and result.error == "cancelled"
    assert engine.calls == [] and engine.unused() == {"implement": 1}
    assert states(log, result.task_id) == ["locate", "context", "failed"]
    assert log.transitions(result.task_id)[-1]["note"] == "cancelled"
    assert log.outcomes(task_id=result.task_id)[0].edit_status == "cancelled"


def test_cancellation_during_a_call(run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    cancel = CancelToken()

    def cancelled_mid_call(call: ScriptedCall) -> str:
        cancel.cancel()
        return GOOD

    engine.script("implement", cancelled_mid_call)
    result = run(workspace, "implement", "point.c", "add", cancel=cancel)
    assert result.cancelled and result.edits == []
    assert states(log, result.task_id) == ["locate", "context", "implement", "failed"]
    (call,) = log.calls(task_id=result.task_id)
    assert call.cancelled and call.finish_reason == "cancelled" and call.response is None


def test_progress_reports_each_state_with_its_percent(run: Runner, workspace: Path,
                                                      engine: ScriptedEngine) -> None:
    seen: list[tuple[str, int]] = []
    engine.script("implement", GOOD)
    assert run(workspace, "implement", "point.c", "add", progress=lambda s, p: seen.append((s, p))).ok
    assert seen == [("locate", 5), ("context", 15), ("implement", 35), ("validate", 75)]


def test_an_engine_failure_is_a_clean_failure(run: Runner, workspace: Path, log: CallLog,
                                              engine: ScriptedEngine) -> None:
    from cra.pipeline.engine import ModelLoadError

    engine.script("implement", ModelLoadError("m.gguf", "truncated"))
    result = run(workspace, "implement", "point.c", "add")
    assert not result.ok and result.error == "cannot load model m.gguf: truncated"
    assert states(log, result.task_id)[-1] == "failed"
    assert log.calls(task_id=result.task_id)[0].error == "ModelLoadError: cannot load model m.gguf: truncated"
