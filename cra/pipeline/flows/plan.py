"""Plan: A5 task analysis (or a query derived from the file/function when there is no instruction) → context →
A1 parts with dependency edges → A2 steps per part, in dependency order → a markdown plan `.cra/plans/<name>.md`
and the same plan as JSON (`.json`, for scaffold and later tooling), both returned in `ActionResult.files`."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from cra.pipeline.actions import FileOut, Verdict
from cra.pipeline.context.symbols import FUNCTION, Symbol
from cra.pipeline.flows.base import DONE, Flow, Task, Terminal
from cra.pipeline.flows.common import (
    analyze_task,
    assemble_for,
    file_outline,
    model_call,
    relative,
    require_c_file,
    source_index,
)
from cra.pipeline.stages import meta_plan as a1
from cra.pipeline.stages import part_plan as a2
from cra.pipeline.stages.doxygen import clean
from cra.pipeline.stages.task_analysis import TaskQuery, describe

PLAN_DIR = ".cra/plans"


class PlannedPart(msgspec.Struct):
    name: str
    goal: str
    files: list[str]
    depends_on: list[str]
    steps: list[a2.PlanStep]


class Plan(msgspec.Struct):
    """The structured plan written next to the markdown."""

    task: str
    target: str
    query: TaskQuery
    summary: str
    parts: list[PlannedPart]


class State(enum.Enum):
    ANALYZE = "analyze"  # A5 task analysis
    CONTEXT = "context"
    META_PLAN = "meta_plan"  # A1
    PART_PLAN = "part_plan"  # A2, once per part
    RENDER = "render"  # the markdown and JSON plan files


@dataclass(slots=True, kw_only=True)
class PlanData:
    functions: dict[str, Symbol] = field(default_factory=dict)  # the file's function definitions, by name
    context_text: str = ""
    meta: a1.MetaPlan | None = None  # A1's answer
    parts: list[a1.PlanPart] = field(default_factory=list)  # A1's parts in dependency order
    depends: dict[str, list[str]] = field(default_factory=dict)  # part → the parts it depends on (valid edges)
    planned: list[PlannedPart] = field(default_factory=list)  # the parts A2 has planned so far
    plan: Plan | None = None


Next = State | Terminal
PlanTask = Task[PlanData]


def _query(task: PlanTask) -> TaskQuery:
    if task.shared.query is None:
        raise RuntimeError("the plan's steps run after its task analysis")
    return task.shared.query


def analyze(task: PlanTask) -> Next:
    require_c_file(task.request.path)
    functions = [s for s in source_index(task).symbols if s.kind == FUNCTION]
    task.data.functions = {s.name: s for s in functions}
    analyze_task(task, stubs=[s.name for s in functions if s.is_stub])
    return State.CONTEXT


def context(task: PlanTask) -> Next:
    functions = task.data.functions
    seed = next((functions[s] for s in _query(task).seeds if s in functions), None)
    task.data.context_text = assemble_for(task, seed, stage=a1.SPEC.name).rendered if seed is not None \
        else file_outline(task)
    return State.META_PLAN


def _task_text(task: PlanTask) -> str:
    return task.request.instruction.strip() or _query(task).intent


def meta_plan(task: PlanTask) -> Next:
    messages = a1.build_messages(context=task.data.context_text, task=_task_text(task),
                                 analysis=describe(_query(task)))
    plan = model_call(task, a1.SPEC.name, lambda: task.llm.structured(a1.SPEC.name, messages, a1.MetaPlan))
    parts, edges = a1.order_parts(plan)
    task.data.meta = plan
    task.data.parts = parts
    task.data.depends = {p.name: [e.depends_on for e in edges if e.part == p.name] for p in parts}
    task.data.planned = []
    dropped = len(plan.edges) - len(edges)
    task.note = f"{len(parts)} parts, {len(edges)} edges" + (f" ({dropped} invalid edges dropped)" if dropped else "")
    return State.PART_PLAN


def part_plan(task: PlanTask) -> Next:
    """One A2 call per state visit, so each part's call is its own logged transition (and cancellable)."""
    planned = task.data.planned
    part = task.data.parts[len(planned)]
    depends = task.data.depends[part.name]
    messages = a2.build_messages(context=task.data.context_text, task=_task_text(task), part_name=part.name,
                                 part_goal=part.goal, depends_on=depends)
    steps = model_call(task, a2.SPEC.name, lambda: task.llm.structured(a2.SPEC.name, messages, a2.PartPlan)).steps
    planned.append(PlannedPart(name=part.name, goal=part.goal, files=list(part.files), depends_on=depends,
                               steps=steps))
    task.note = f"part {len(planned)}/{len(task.data.parts)}: {part.name} ({len(steps)} steps)"
    return State.PART_PLAN if len(planned) < len(task.data.parts) else State.RENDER


def plan_name(task: Task[Any]) -> str:
    stem = Path(task.request.path).stem
    words = task.request.symbol or " ".join(task.request.instruction.split()[:6])
    slug = re.sub(r"[^a-z0-9]+", "-", f"{stem} {words}".lower()).strip("-")
    return slug[:60].strip("-") or "plan"


def render_markdown(plan: Plan) -> str:
    lines = [f"# Plan: {clean(plan.task)}", "", f"Target: `{plan.target}`", "", clean(plan.summary) or "", "",
             f"Task analysis: {clean(describe(plan.query))}", ""]
    for number, part in enumerate(plan.parts, 1):
        lines.append(f"## {number}. {clean(part.name)}")
        lines.append("")
        lines.append(clean(part.goal))
        if part.files:
            lines.append("")
            lines.append("Files: " + ", ".join(f"`{clean(f)}`" for f in part.files))
        if part.depends_on:
            lines.append("")
            lines.append("Depends on: " + ", ".join(clean(d) for d in part.depends_on))
        lines.append("")
        for step_no, step in enumerate(part.steps, 1):
            lines.append(f"{step_no}. **{step.kind}** `{clean(step.target)}`: {clean(step.description)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render(task: PlanTask) -> Next:
    target = f"{relative(task, task.request.path)}" + (f":{task.request.symbol}" if task.request.symbol else "")
    meta = task.data.meta
    assert meta is not None, "render runs after the meta plan"
    plan = Plan(task=_task_text(task), target=target, query=_query(task), summary=meta.summary,
                parts=task.data.planned)
    base = Path(task.request.root) / PLAN_DIR / plan_name(task)
    task.result.files = [
        FileOut(path=str(base.with_suffix(".md")), text=render_markdown(plan)),
        FileOut(path=str(base.with_suffix(".json")), text=msgspec.json.format(msgspec.json.encode(plan)).decode()),
    ]
    steps = sum(len(p.steps) for p in plan.parts)
    task.result.verdict = Verdict(message=f"plan: {len(plan.parts)} parts, {steps} steps")
    task.data.plan = plan
    return DONE


FLOW = Flow(
    action="plan",
    states=State,
    start=State.ANALYZE,
    steps={State.ANALYZE: analyze, State.CONTEXT: context, State.META_PLAN: meta_plan, State.PART_PLAN: part_plan,
           State.RENDER: render},
    percent={State.ANALYZE: 5, State.CONTEXT: 15, State.META_PLAN: 30, State.PART_PLAN: 50, State.RENDER: 90},
    data=PlanData,
)


def latest_plan_text(root: str, stem: str) -> str:
    """The newest markdown plan written for a file with this stem (what scaffold declares), or ""."""
    folder = Path(root) / PLAN_DIR
    slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    plans = sorted(folder.glob(f"{slug}*.md"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return plans[-1].read_text(errors="replace")[:3000] if plans else ""
