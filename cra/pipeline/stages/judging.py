"""A `Judge` (the yes/no interface the context package asks about ambiguous candidates) backed by `StageLLM`:
one batched decision call per cascade stage, routed to that stage's model and adapter, one call-log row per
question so each decision becomes a training pair for its adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cra.pipeline.stages.prompt import message

if TYPE_CHECKING:
    from cra.pipeline.context import Judge
    from cra.pipeline.llm import StageLLM

LABELS = ("yes", "no")


def stage_judge(llm: StageLLM, instruction: str) -> Judge:
    """The judge whose system prompt is the context package's judge prompt followed by the stage's `instruction`
    (what makes a candidate relevant for this stage)."""
    # The context package (tree-sitter) loads when a judge is built, not with the stage registry.
    from cra.pipeline.context.judge import JUDGE_SYSTEM_PROMPT

    system = f"{JUDGE_SYSTEM_PROMPT} {instruction}"

    def judge(stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        messages = [message("system", system), message("user", prefix)]
        decisions = llm.decide_batch(stage, messages, questions, labels=LABELS)
        return [(d.label == LABELS[0], float(d.prob)) for d in decisions]

    return judge
