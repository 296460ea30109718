"""Scaffold, on scripted answers: A3's functions become prototypes in the header and stubs in the source; a
design that breaks the build is adjusted and retried; a design of functions that exist already is a no-op."""

from __future__ import annotations

from pathlib import Path

from pipeline_support import Runner, notes, states
from scripted_engine import ScriptedEngine

from cra.pipeline.calllog import CallLog
from cra.pipeline.sandbox import compile_unit
from cra.pipeline.stages import adjustment as a4
from cra.pipeline.stages import scaffold as a3


def spec(name: str, return_type: str = "int") -> a3.FunctionSpec:
    return a3.FunctionSpec(name=name, return_type=return_type,
                           params=[a3.ParamSpec(name="p", type="const Point *", description="the point")],
                           brief=f"{name} of a point.", returns="the value.", contract="p is not NULL.")


def test_a3_design_becomes_prototypes_and_stubs(run: Runner, workspace: Path, log: CallLog,
                                                engine: ScriptedEngine) -> None:
    engine.script("scaffold", a3.Scaffold(functions=[spec("point_norm"), spec("point_x")]))
    result = run(workspace, "scaffold", "point.c", instruction="add a norm for points")
    assert result.ok, result.error
    assert engine.stages() == ["scaffold"]
    assert "add a norm for points" in engine.calls[0].prompt and "point_x" in engine.calls[0].prompt  # existing
    assert states(log, result.task_id) == ["locate", "route", "context", "scaffold", "render", "validate", "done"]
    assert any(n == "A3 designed 1 functions: point_norm" for n in notes(log, result.task_id))
    (header,) = result.files
    assert header.path == str(workspace / "point.h")
    assert "int point_norm(const Point *p);" in header.text and header.text.count("int point_x(") == 1
    assert header.text.rstrip().endswith("#endif /* POINT_H */")
    assert result.edits and all(e.start_line == e.end_line for e in result.edits)  # insertions only
    assert "int point_norm(const Point *p)\n{\n    (void)p;\n    return 0;\n}" in result.new_text
    assert result.verdict.compiled is True and result.verdict.message.startswith("scaffolded point_norm; ")
    workspace.joinpath("point.h").write_text(header.text)
    assert compile_unit(workspace, "point.c", result.new_text).ok


def test_a_design_that_breaks_the_build_is_adjusted(run: Runner, workspace: Path, log: CallLog,
                                                    engine: ScriptedEngine) -> None:
    adjustment = a4.Adjustment(diagnosis="unknown type", focus="use int", steps=["declare int"])
    engine.script("scaffold", a3.Scaffold(functions=[spec("point_norm", "norm_t")]),
                  a3.Scaffold(functions=[spec("point_norm")]))
    engine.script("adjustment", adjustment)
    result = run(workspace, "scaffold", "point.c", instruction="add a norm", max_rounds=1)
    assert result.ok, result.error
    assert engine.stages() == ["scaffold", "adjustment", "scaffold"]
    assert states(log, result.task_id) == ["locate", "route", "context", "scaffold", "render", "validate", "adjust",
                                           "scaffold", "render", "validate", "done"]
    assert "The previous attempt failed" in engine.calls[2].prompt and "norm_t" in engine.calls[2].prompt
    assert "norm_t" not in result.files[0].text


def test_a_design_of_existing_functions_is_a_no_op(run: Runner, workspace: Path, log: CallLog,
                                                   engine: ScriptedEngine) -> None:
    engine.script("scaffold", a3.Scaffold(functions=[spec("point_x"), spec("add")]))
    result = run(workspace, "scaffold", "point.c", instruction="declare what is there")
    assert result.ok and result.edits == [] and result.files == []
    assert result.verdict.message == "nothing to scaffold: every proposed function is already declared"
    assert states(log, result.task_id)[-2:] == ["scaffold", "done"]
