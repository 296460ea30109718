"""The five actions end to end: real tiny llama.cpp model, real tree-sitter, real gcc sandbox, real call log."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from pipeline_support import Runner, notes, states

from cra.pipeline.calllog import CallLog
from cra.pipeline.context import parse_source
from cra.pipeline.engine import CancelToken
from cra.pipeline.flows.plan import Plan
from cra.pipeline.sandbox import compile_unit


def test_document_trivial_accessor_needs_no_model(run: Runner, workspace: Path, log: CallLog) -> None:
    result = run(workspace, "document", "point.c", "point_y")
    assert result.ok, result.error
    assert log.calls(task_id=result.task_id) == []  # MoMA stage 1: no model call at all
    assert states(log, result.task_id) == ["locate", "route", "render", "validate", "done"]
    assert any("MoMA stage 1" in n for n in notes(log, result.task_id))
    assert result.verdict.compiled is True
    block = result.edits[0].new_text
    assert block.startswith("/**") and "@param p" in block and "@return the value of `p->y`" in block
    assert result.edits[0].start_line == result.edits[0].end_line == 7  # inserted right above `int point_y`
    doc = next(s for s in parse_source("point.c", result.new_text.encode()).symbols if s.name == "point_y").doc
    assert "Returns the `y` field of `p`" in doc
    assert compile_unit(workspace, "point.c", result.new_text).ok
    outcome = log.outcomes(task_id=result.task_id)[0]
    assert outcome.edit_status == "proposed" and outcome.compiled is True


@pytest.mark.slow
def test_document_replaces_an_existing_comment_with_a_model_written_one(run: Runner, workspace: Path,
                                                                       log: CallLog) -> None:
    result = run(workspace, "document", "point.c", "point_distance")
    assert result.ok, result.error
    calls = log.calls(task_id=result.task_id)
    assert [c.stage for c in calls] == ["documentation"] and calls[0].grammar
    edit = result.edits[0]
    assert (edit.start_line, edit.end_line) == (12, 13)  # the old one-line comment is replaced, not duplicated
    assert "Manhattan" not in result.new_text
    assert result.new_text.count("int point_distance(const Point *a, const Point *b)") == 1
    assert "@param a" in edit.new_text and "@param b" in edit.new_text  # the real names, in order
    assert edit.new_text.index("@param a") < edit.new_text.index("@param b")
    assert result.verdict.compiled is True


@pytest.mark.slow
def test_document_file_level(run: Runner, workspace: Path, log: CallLog) -> None:
    result = run(workspace, "document", "point.h")
    assert result.ok, result.error
    assert result.edits[0].start_line == 0 and "@file point.h" in result.edits[0].new_text
    assert result.new_text.startswith("/**") and result.new_text.endswith(workspace.joinpath("point.h").read_text())


def test_scaffold_prototype_from_definition_then_no_op(run: Runner, workspace: Path, log: CallLog) -> None:
    result = run(workspace, "scaffold", "point.c", "point_distance")
    assert result.ok, result.error
    assert log.calls(task_id=result.task_id) == []
    assert result.edits == []  # point.c already includes point.h: only the header changes
    (header,) = result.files
    assert header.path == str(workspace / "point.h")
    assert "/** Manhattan distance between two points. */\nint point_distance(const Point *a, const Point *b);" \
        in header.text
    assert header.text.rstrip().endswith("#endif /* POINT_H */")
    assert result.verdict.compiled is True
    workspace.joinpath("point.h").write_text(header.text)
    again = run(workspace, "scaffold", "point.c", "point_distance")
    assert again.ok and again.edits == [] and again.files == []
    assert again.verdict.message.startswith("nothing to scaffold")


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_tests_flow_gives_up_cleanly_after_bounded_adjustment(run: Runner, workspace: Path, log: CallLog) -> None:
    result = run(workspace, "tests", "point.c", "point_distance", max_rounds=1)
    assert not result.ok and not result.cancelled
    assert "gave up after 2 attempts" in result.error
    # The random tiny model's cases never call the function: that is caught before any compiler run.
    assert "no test case called `point_distance`" in result.error
    path = states(log, result.task_id)
    assert path == ["locate", "context", "generate_tests", "adjust", "generate_tests", "failed"]
    round_notes = notes(log, result.task_id)
    assert any(n.startswith("attempt 1 failed") for n in round_notes)
    assert any(n.startswith("round 1:") and "adjustment: include (default" in n for n in round_notes)
    stages = [c.stage for c in log.calls(task_id=result.task_id, newest_first=False)]
    assert stages == ["test_generation", "adjustment", "test_generation"]
    retry_prompt = log.calls(task_id=result.task_id, stage="test_generation")[0].messages[-1]["content"]
    assert "The previous attempt failed" in retry_prompt and "Diagnosis:" in retry_prompt
    outcome = log.outcomes(task_id=result.task_id)[0]
    assert outcome.edit_status == "failed" and outcome.reason == result.error


@pytest.mark.slow
def test_zero_rounds_means_no_adjustment(run: Runner, workspace: Path, log: CallLog) -> None:
    result = run(workspace, "tests", "point.c", "point_x", max_rounds=0)
    assert not result.ok and "gave up after 1 attempts" in result.error
    assert "adjust" not in states(log, result.task_id)
    assert [c.stage for c in log.calls(task_id=result.task_id)] == ["test_generation"]


def test_cancellation_during_a_model_call(run: Runner, workspace: Path, log: CallLog) -> None:
    cancel = CancelToken()

    def progress(stage: str, percent: int) -> None:
        if stage == "document":
            cancel.cancel()

    result = run(workspace, "document", "point.c", "point_distance", cancel=cancel, progress=progress)
    assert result.cancelled and not result.ok and result.error == "cancelled"
    assert result.edits == []
    assert states(log, result.task_id)[-1] == "failed"
    assert log.outcomes(task_id=result.task_id)[0].edit_status == "cancelled"


@pytest.mark.slow
def test_plan_without_instruction_derives_the_query(run: Runner, workspace: Path, log: CallLog) -> None:
    result = run(workspace, "plan", "point.c", "add")
    assert result.ok, result.error
    md, js = result.files
    assert md.path == str(workspace / ".cra/plans/point-add.md") and js.path.endswith("point-add.json")
    plan = msgspec.json.decode(js.text.encode(), type=Plan)
    assert plan.query.seeds[0] == "add" and plan.query.type == "implement"  # derived: no A5 call
    stages = [c.stage for c in log.calls(task_id=result.task_id, newest_first=False)]
    assert stages == ["meta_plan"] + ["part_plan"] * len(plan.parts)
    assert states(log, result.task_id).count("part_plan") == len(plan.parts)
    assert md.text.startswith("# Plan: Complete `add` in point.c")
    for part in plan.parts:
        assert len(part.steps) >= 1
        assert all(d in {p.name for p in plan.parts} for d in part.depends_on)


@pytest.mark.slow
def test_plan_with_instruction_runs_task_analysis(run: Runner, workspace: Path, log: CallLog) -> None:
    result = run(workspace, "plan", "point.c", instruction="add a midpoint function for two points")
    assert result.ok, result.error
    stages = [c.stage for c in log.calls(task_id=result.task_id, newest_first=False)]
    assert stages[:2] == ["task_analysis", "meta_plan"]
    assert any("task_analysis: include (default" in n for n in notes(log, result.task_id))
    assert result.files[0].path.endswith("point-add-a-midpoint-function-for-two.md")


@pytest.mark.slow
def test_routing_adapter_makes_a12_decide(run: Runner, workspace: Path, log: CallLog,
                                          long_tiny_adapter: Path) -> None:
    extra = {"stages": {"routing": {"adapter": str(long_tiny_adapter), "max_tokens": 16}}}
    result = run(workspace, "plan", "point.c", instruction="add a midpoint function", extra=extra)
    routing = log.calls(task_id=result.task_id, stage="routing")
    assert len(routing) == 1 and routing[0].response in ("include", "exclude")
    assert routing[0].adapter_name is not None
    analysed = bool(log.calls(task_id=result.task_id, stage="task_analysis"))
    assert analysed == (routing[0].response == "include")


def test_implement_failure_goes_through_adjustment_and_gives_up(run: Runner, workspace: Path,
                                                                log: CallLog) -> None:
    result = run(workspace, "implement", "point.c", "add", max_rounds=1)
    assert result.ok is False and "after 2 attempts" in result.error
    path = states(log, result.task_id)
    assert path[:3] == ["locate", "context", "implement"] and path.count("adjust") == 1 and path[-1] == "failed"
    assert any("task_analysis: exclude (rule" in n for n in notes(log, result.task_id))  # no instruction: no A5
    assert any(n.startswith("round 1:") for n in notes(log, result.task_id))
    assert [c.stage for c in log.calls(task_id=result.task_id, newest_first=False)][0] == "implement"
