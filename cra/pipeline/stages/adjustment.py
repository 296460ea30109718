"""A4 adjustment: after a failed compile or test run, revise the remaining steps and name what to focus on.

Input: the condensed failure (sandbox `condense`), the change that failed and the steps still to do. Output
(grammar-constrained JSON): a diagnosis, a focus hint for the next attempt and the revised steps. The flow folds
the result into the retry's prompt (`as_feedback`); nothing is parsed from prose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import msgspec

from cra.pipeline.stages.doxygen import clean
from cra.pipeline.stages.fields import Line
from cra.pipeline.stages.prompt import stage_messages
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "A change failed to compile or failed its tests. Read the failure, say in one sentence what went wrong, "
    "give one concrete thing the next attempt must focus on, and list the revised steps (1 to 5) that remain. "
    "Answer with JSON only."
)

# The failure text shown to the model; longer output is condensed by the sandbox first.
FAILURE_CHARS = 1200
HINT_CHARS = 700  # of FAILURE_CHARS at most: the declared names that may have been meant (`name_hints`)
CHANGE_CHARS = 1500


class Adjustment(msgspec.Struct):
    diagnosis: Line
    focus: Line
    steps: Annotated[list[Line], msgspec.Meta(min_length=1, max_length=5)]


def build_messages(*, context: str, goal: str, failure: str, change: str, remaining: Sequence[str],
                   round_number: int) -> list[Message]:
    request = (f"Goal: {goal.strip()}\nAttempt {round_number} produced:\n```c\n{change.strip()[:CHANGE_CHARS]}\n```\n"
               f"Failure:\n{failure.strip()[:FAILURE_CHARS]}")
    if remaining:
        request += "\nRemaining steps:\n" + "\n".join(f"- {s}" for s in remaining)
    return stage_messages(SYSTEM, context, request)


SPEC = StageSpec(
    name="adjustment", code="A4", mode="structured", description="adjustment: revised steps from failures",
    input="failures + prior changes + remaining steps", output="revised steps", output_type=Adjustment,
    prompt=build_messages, signal="compiled_and_tests_passed", question="did the revised steps succeed?")


def as_feedback(failure: str, adjustment: Adjustment | None) -> str:
    """The text the retry sees: the failure itself, then the adjustment's diagnosis, focus and steps."""
    text = failure.strip()
    if adjustment is None:
        return text
    parts = [text]
    if clean(adjustment.diagnosis):
        parts.append(f"Diagnosis: {clean(adjustment.diagnosis)}")
    if clean(adjustment.focus):
        parts.append(f"Focus: {clean(adjustment.focus)}")
    steps = [clean(s) for s in adjustment.steps if clean(s)]
    if steps:
        parts.append("Revised steps:\n" + "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1)))
    return "\n".join(parts)
