"""Document, on scripted answers: a model-written comment replaces the old one; a file comment; a comment that
cannot be validated goes through an adjustment round and gives up; a rule's comment fails at once; output that
is not a FunctionDoc is a clean failure."""

from __future__ import annotations

from pathlib import Path

from pipeline_support import Runner, notes, states
from scripted_engine import ScriptedEngine

from cra.pipeline.calllog import CallLog
from cra.pipeline.context import parse_source
from cra.pipeline.sandbox import compile_unit
from cra.pipeline.stages import adjustment as a4
from cra.pipeline.stages import documentation as a9

DISTANCE_DOC = a9.FunctionDoc(brief="Taxicab distance between two points.",
                              params=[a9.ParamDoc(name="a", description="the first point"),
                                      a9.ParamDoc(name="b", description="the second point")],
                              returns="the sum of the absolute coordinate differences.", notes="")
BROKEN = """#include "point.h"

int twice(int v)
{
    return v * 2 + missing;
}

int point_z(const Point *p)
{
    return p->z;
}
"""
ADJUSTMENT = a4.Adjustment(diagnosis="the file itself does not compile", focus="nothing to change", steps=["stop"])


def test_model_comment_replaces_the_old_one(run: Runner, workspace: Path, log: CallLog,
                                            engine: ScriptedEngine) -> None:
    engine.script("documentation", DISTANCE_DOC)
    result = run(workspace, "document", "point.c", "point_distance")
    assert result.ok, result.error
    assert engine.stages() == ["documentation"] and engine.calls[0].struct_type is a9.FunctionDoc
    assert states(log, result.task_id) == ["locate", "route", "context", "document", "render", "validate", "done"]
    assert any(n.startswith("MoMA stage 2: documentation on tier1") for n in notes(log, result.task_id))
    (edit,) = result.edits
    assert (edit.start_line, edit.end_line) == (12, 13)
    assert edit.new_text.startswith("/**") and "Taxicab distance" in edit.new_text
    assert edit.new_text.index("@param a the first point") < edit.new_text.index("@param b the second point")
    assert "Manhattan" not in result.new_text
    doc = next(s for s in parse_source("point.c", result.new_text.encode()).symbols if s.name == "point_distance").doc
    assert "Taxicab distance" in doc
    assert result.verdict.compiled is True and result.verdict.message == "parses and compiles without new warnings"
    assert result.anchor_text is not None and result.anchor_text.startswith("int point_distance(")
    assert compile_unit(workspace, "point.c", result.new_text).ok


def test_file_comment(run: Runner, workspace: Path, engine: ScriptedEngine) -> None:
    engine.script("documentation", a9.FileDoc(brief="Points on a grid.", details="Accessors and distances."))
    result = run(workspace, "document", "point.h")
    assert result.ok, result.error
    assert engine.calls[0].struct_type is a9.FileDoc
    assert result.edits[0].start_line == result.edits[0].end_line == 0
    assert "@file point.h" in result.edits[0].new_text and "Points on a grid." in result.edits[0].new_text
    assert result.new_text.endswith(workspace.joinpath("point.h").read_text())
    assert result.anchor_text is None


def test_a_file_that_does_not_compile_before_the_comment_is_not_blamed_on_it(
        run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    # `missing` is undeclared before the change too: the comment is offered, and the verdict says what cra could
    # not check instead of spending adjustment rounds on an error the comment did not cause.
    workspace.joinpath("broken.c").write_text(BROKEN)
    doc = a9.FunctionDoc(brief="Twice the value.", params=[a9.ParamDoc(name="v", description="the value")],
                         returns="twice v.", notes="")
    engine.script("documentation", doc)
    result = run(workspace, "document", "broken.c", "twice", max_rounds=1)
    assert result.ok, result.error
    assert result.verdict.compiled is None
    assert result.verdict.message.startswith("compile not checked") and "missing" in result.verdict.message
    assert "Twice the value." in result.edits[0].new_text
    assert engine.stages() == ["documentation"]
    assert states(log, result.task_id) == ["locate", "route", "context", "document", "render", "validate", "done"]


def test_a_rules_comment_on_a_file_that_does_not_compile_is_offered(run: Runner, workspace: Path, log: CallLog,
                                                                    engine: ScriptedEngine) -> None:
    workspace.joinpath("broken.c").write_text(BROKEN)
    result = run(workspace, "document", "broken.c", "point_z", max_rounds=2)
    assert result.ok, result.error
    assert result.verdict.compiled is None and engine.calls == []
    assert states(log, result.task_id) == ["locate", "route", "render", "validate", "done"]


def test_output_that_is_not_a_function_doc_is_a_clean_failure(run: Runner, workspace: Path, log: CallLog,
                                                              engine: ScriptedEngine) -> None:
    engine.script("documentation", '{"brief": 3}')
    result = run(workspace, "document", "point.c", "point_distance")
    assert not result.ok and "scripted answer is not a FunctionDoc" in (result.error or "")
    (call,) = log.calls(task_id=result.task_id)
    assert call.error is not None and call.error.startswith("StructuredOutputError")
    assert log.outcomes(task_id=result.task_id)[0].edit_status == "failed"
