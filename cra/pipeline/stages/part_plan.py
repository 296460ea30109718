"""A2 part-plan: the implementation steps of one part (grammar-constrained JSON)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

from cra.pipeline.stages.fields import Line, Name
from cra.pipeline.stages.prompt import stage_messages
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "List the implementation steps for one part of a plan, in order, 1 to 8 steps. Each step has a kind "
    "(declare: add a type or prototype; implement: write a function body; test: write tests; document: write "
    "doc comments; refactor: change existing code), the symbol or file it targets, and one sentence saying what "
    "to do. Answer with JSON only."
)

StepKind = Literal["declare", "implement", "test", "document", "refactor"]


class PlanStep(msgspec.Struct):
    kind: StepKind
    target: Name
    description: Line


class PartPlan(msgspec.Struct):
    steps: Annotated[list[PlanStep], msgspec.Meta(min_length=1, max_length=8)]


def build_messages(*, context: str, task: str, part_name: str, part_goal: str, depends_on: list[str]) -> list[Message]:
    request = f"Overall task: {task.strip()}\nPart: {part_name}\nGoal: {part_goal.strip()}"
    if depends_on:
        request += f"\nAlready done before this part: {', '.join(depends_on)}"
    return stage_messages(SYSTEM, context, request)


SPEC = StageSpec(
    name="part_plan", code="A2", mode="structured", description="part-plan: implementation steps for one part",
    input="part description + context", output="implementation steps", output_type=PartPlan,
    prompt=build_messages, signal="compiled_and_tests_passed",
    question="did the steps execute without adjustment loops?")
