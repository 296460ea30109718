"""Plan, on scripted answers: task analysis, the meta plan, one part plan per part in dependency order, then the
markdown and JSON plans; an invalid dependency edge is dropped; output that is not a MetaPlan fails cleanly."""

from __future__ import annotations

from pathlib import Path

import msgspec
from pipeline_support import Runner, notes, states
from scripted_engine import ScriptedEngine

from cra.pipeline.calllog import CallLog
from cra.pipeline.flows.plan import Plan
from cra.pipeline.stages import meta_plan as a1
from cra.pipeline.stages import part_plan as a2
from cra.pipeline.stages import task_analysis as a5

QUERY = a5.TaskQuery(type="feature", seeds=["point_distance"], keywords=["midpoint"], intent="add a midpoint")
META = a1.MetaPlan(summary="A midpoint function and its tests.",
                   parts=[a1.PlanPart(name="tests", goal="test the midpoint", files=["tests/test_mid.c"]),
                          a1.PlanPart(name="midpoint", goal="compute the midpoint", files=["point.c"])],
                   edges=[a1.DependencyEdge(part="tests", depends_on="midpoint"),
                          a1.DependencyEdge(part="tests", depends_on="nowhere")])


def steps(kind: str, target: str) -> a2.PartPlan:
    return a2.PartPlan(steps=[a2.PlanStep(kind=kind, target=target, description=f"{kind} {target}")])  # type: ignore[arg-type]


def test_plan_with_an_instruction(run: Runner, workspace: Path, log: CallLog, engine: ScriptedEngine) -> None:
    engine.script("task_analysis", QUERY).script("meta_plan", META)
    engine.script("part_plan", steps("implement", "point_midpoint"), steps("test", "point_midpoint"))
    result = run(workspace, "plan", "point.c", instruction="add a midpoint function")
    assert result.ok, result.error
    assert engine.stages() == ["task_analysis", "meta_plan", "part_plan", "part_plan"] and engine.unused() == {}
    assert states(log, result.task_id) == ["analyze", "context", "meta_plan", "part_plan", "part_plan", "render",
                                           "done"]
    plan_notes = notes(log, result.task_id)
    assert any("task_analysis: include (default" in n for n in plan_notes)
    assert "2 parts, 1 edges (1 invalid edges dropped)" in plan_notes
    assert "Part: midpoint" in engine.calls[2].prompt and "Already done" not in engine.calls[2].prompt
    assert "Part: tests" in engine.calls[3].prompt and "Already done before this part: midpoint" in \
        engine.calls[3].prompt
    md, js = result.files
    assert md.path == str(workspace / ".cra/plans/point-add-a-midpoint-function.md")
    plan = msgspec.json.decode(js.text.encode(), type=Plan)
    assert [p.name for p in plan.parts] == ["midpoint", "tests"]  # dependency order
    assert plan.parts[1].depends_on == ["midpoint"] and plan.query == QUERY
    assert md.text.startswith("# Plan: add a midpoint function")
    assert result.verdict.message == "plan: 2 parts, 2 steps"


def test_output_that_is_not_a_meta_plan_fails_cleanly(run: Runner, workspace: Path, log: CallLog,
                                                      engine: ScriptedEngine) -> None:
    engine.script("meta_plan", '{"summary": "x", "parts": []}')
    result = run(workspace, "plan", "point.c", "add")  # no instruction: the query is derived, no A5 call
    assert not result.ok and "scripted answer is not a MetaPlan" in (result.error or "")
    assert result.files == []
    assert engine.stages() == ["meta_plan"]
    assert states(log, result.task_id) == ["analyze", "context", "meta_plan", "failed"]
