"""A12 routing: include or exclude an optional stage for this task, one tier-0 decision per stage.

The questions share one prefix (system prompt + task summary), so `decide_batch` evaluates it once for all the
optional stages of a task. pipeline.flows.gating decides when to ask at all and what to do without a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cra.pipeline.stages.prompt import message
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.engine import Message

SYSTEM = (
    "You route a C coding task through an agent pipeline. For the pipeline stage named in the question, answer "
    "include if running it is likely to improve the result for this task, otherwise exclude."
)
LABELS = ("include", "exclude")


def build_prefix(*, action: str, task: str, target: str) -> list[Message]:
    return [message("system", SYSTEM),
            message("user", f"Action: {action}\nTarget: {target}\nTask: {task.strip() or '(none)'}")]


def question(stage: str) -> str:
    # Imported here: the registry imports this module.
    from cra.pipeline.stages.registry import spec_for

    return f"Stage `{stage}`: {spec_for(stage).title}. Include it?"


SPEC = StageSpec(
    name="routing", code="A12", mode="decision", description="routing: include or exclude each optional stage",
    input="task summary + one optional stage", output="include / exclude", labels=LABELS, prompt=build_prefix,
    signal="edit_applied", question="did the selected stages produce an accepted edit?")
