"""A12 routing: include or exclude an optional stage for this task, one tier-0 decision per stage.

The questions share one prefix (system prompt + task summary), so `decide_batch` evaluates it once for all the
optional stages of a task. pipeline.routing decides when to ask at all and what to do without a model.
"""

from __future__ import annotations

from cra.pipeline.engine import Message
from cra.pipeline.config import STAGES

STAGE = "routing"
CODE = "A12"
DEFAULT_ADAPTER = "a12-routing"
MODE = "decision"

SYSTEM = (
    "You route a C coding task through an agent pipeline. For the pipeline stage named in the question, answer "
    "include if running it is likely to improve the result for this task, otherwise exclude."
)
LABELS = ("include", "exclude")


def build_prefix(*, action: str, task: str, target: str) -> list[Message]:
    return [Message(role="system", content=SYSTEM),
            Message(role="user", content=f"Action: {action}\nTarget: {target}\nTask: {task.strip() or '(none)'}")]


def question(stage: str) -> str:
    return f"Stage `{stage}`: {STAGES[stage]}. Include it?"
