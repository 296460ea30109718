"""Tests, on scripted answers: a suite that passes is written next to the source; a failing case is left out and
the rest kept without another model call; a suite that never calls the function is retried, then given up."""

from __future__ import annotations

from pathlib import Path

from pipeline_support import Runner, states
from scripted_engine import ScriptedEngine

from cra.pipeline.calllog import CallLog
from cra.pipeline.stages import adjustment as a4
from cra.pipeline.stages import test_generation as a7


def case(name: str, body: str) -> a7.TestCase:
    return a7.TestCase(name=name, category="happy_path", description=name, body=body)


READS_X = case("reads_x", "Point p = {1, 2};\nCHECK(point_x(&p) == 1);")
WRONG = case("wrong", "Point p = {1, 2};\nCHECK(point_x(&p) == 2);")
OTHER = case("other", "CHECK(add(1, 1) == 0);")


def test_a_passing_suite_is_written_next_to_the_source(run: Runner, workspace: Path, log: CallLog,
                                                       engine: ScriptedEngine) -> None:
    engine.script("test_generation", a7.TestSuite(cases=[READS_X]))
    result = run(workspace, "tests", "point.c", "point_x")
    assert result.ok, result.error
    assert engine.stages() == ["test_generation"]
    assert "int point_x(const Point *p)" in engine.calls[0].prompt
    (test_file,) = result.files
    assert test_file.path == str(workspace / "test_point_x.c")
    assert '#include "point.h"' in test_file.text and "point_x(&p) == 1" in test_file.text
    assert result.verdict.tests_passed is True and result.verdict.message == "1 test program(s) passed (plain)"
    assert states(log, result.task_id) == ["locate", "context", "generate_tests", "validate", "done"]


def test_a_failing_case_is_left_out_and_the_rest_kept(run: Runner, workspace: Path, log: CallLog,
                                                      engine: ScriptedEngine) -> None:
    (workspace / "tests").mkdir()
    engine.script("test_generation", a7.TestSuite(cases=[READS_X, WRONG]))
    result = run(workspace, "tests", "point.c", "point_x")
    assert result.ok, result.error
    assert engine.stages() == ["test_generation"]  # the triage runs the cases, not the model
    assert states(log, result.task_id) == ["locate", "context", "generate_tests", "validate", "validate", "done"]
    (test_file,) = result.files
    assert test_file.path == str(workspace / "tests" / "test_point_x.c")
    assert "reads_x" in test_file.text and "wrong" not in test_file.text
    assert "left out 1 case(s): wrong (fails on the current code" in result.verdict.message


def test_a_suite_that_never_calls_the_function_is_given_up(run: Runner, workspace: Path, log: CallLog,
                                                           engine: ScriptedEngine) -> None:
    engine.script("test_generation", a7.TestSuite(cases=[OTHER]), a7.TestSuite(cases=[OTHER]))
    engine.script("adjustment", a4.Adjustment(diagnosis="wrong function", focus="call point_x", steps=["call it"]))
    result = run(workspace, "tests", "point.c", "point_x", max_rounds=1)
    assert not result.ok and "no test case called `point_x`" in (result.error or "")
    assert "gave up after 2 attempts" in (result.error or "")
    assert engine.stages() == ["test_generation", "adjustment", "test_generation"]
    assert states(log, result.task_id) == ["locate", "context", "generate_tests", "adjust", "generate_tests",
                                           "failed"]
    assert "Diagnosis: wrong function" in engine.calls[2].prompt


def test_a_static_function_cannot_be_tested_from_outside(run: Runner, workspace: Path,
                                                         engine: ScriptedEngine) -> None:
    workspace.joinpath("hidden.c").write_text("static int hidden(int v)\n{\n    return v;\n}\n")
    result = run(workspace, "tests", "hidden.c", "hidden")
    assert not result.ok and "is static" in (result.error or "") and engine.calls == []
