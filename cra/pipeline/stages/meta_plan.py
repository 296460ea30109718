"""A1 meta-plan: split a task into parts with dependency edges (grammar-constrained JSON).

The model only proposes; `order_parts` deterministically drops edges that name unknown parts or close a cycle and
returns the parts in an order where every part comes after the parts it depends on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec

from cra.pipeline.stages.fields import Line, Name, RelPath
from cra.pipeline.stages.prompt import stage_messages
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "Split the task into 1 to 5 independent parts. A part is a unit of work that can be implemented and tested "
    "on its own (a module, a data type with its functions, a feature). Give each part a short unique name, its "
    "goal, and the files it touches. Add a dependency edge when a part needs another part done first. "
    "Answer with JSON only."
)


class PlanPart(msgspec.Struct):
    name: Name
    goal: Line
    files: Annotated[list[RelPath], msgspec.Meta(max_length=4)] = []


class DependencyEdge(msgspec.Struct):
    part: Name
    depends_on: Name


class MetaPlan(msgspec.Struct):
    summary: Line
    parts: Annotated[list[PlanPart], msgspec.Meta(min_length=1, max_length=5)]
    edges: Annotated[list[DependencyEdge], msgspec.Meta(max_length=8)] = []


def build_messages(*, context: str, task: str, analysis: str = "") -> list[Message]:
    request = f"Task: {task.strip()}"
    if analysis:
        request += f"\nTask analysis: {analysis.strip()}"
    return stage_messages(SYSTEM, context, request)


SPEC = StageSpec(
    name="meta_plan", code="A1", mode="structured", description="meta-plan: parts and dependency edges",
    input="task description + context", output="parts with dependency edges", output_type=MetaPlan,
    prompt=build_messages, signal="compiled_and_tests_passed", question="did the downstream parts succeed?")


def order_parts(plan: MetaPlan) -> tuple[list[PlanPart], list[DependencyEdge]]:
    """Parts in dependency order (stable: ties keep the model's order) and the edges that were kept."""
    parts: list[PlanPart] = []
    seen: set[str] = set()
    for part in plan.parts:  # duplicate names would make edges ambiguous: the first one wins
        if part.name not in seen:
            seen.add(part.name)
            parts.append(part)
    deps: dict[str, set[str]] = {p.name: set() for p in parts}
    kept: list[DependencyEdge] = []
    for edge in plan.edges:
        if edge.part not in deps or edge.depends_on not in deps or edge.part == edge.depends_on:
            continue
        if _reaches(deps, edge.depends_on, edge.part):
            continue  # would close a cycle
        if edge.depends_on not in deps[edge.part]:
            deps[edge.part].add(edge.depends_on)
            kept.append(edge)
    ordered: list[PlanPart] = []
    done: set[str] = set()
    while len(ordered) < len(parts):
        for part in parts:
            if part.name not in done and deps[part.name] <= done:
                ordered.append(part)
                done.add(part.name)
                break
    return ordered, kept


def _reaches(deps: dict[str, set[str]], start: str, goal: str) -> bool:
    stack, visited = [start], set()
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        if node not in visited:
            visited.add(node)
            stack.extend(deps[node])
    return False
