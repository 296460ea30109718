"""A `Judge` (the yes/no interface the context package asks about ambiguous candidates) backed by `StageLLM`:
one batched decision call per cascade stage, routed to that stage's model and adapter, one call-log row per
question so each decision becomes a training pair for its adapter."""

from __future__ import annotations

from cra.pipeline.context import Judge
from cra.pipeline.engine import Message
from cra.pipeline.llm import StageLLM

LABELS = ("yes", "no")


def stage_judge(llm: StageLLM, system: str) -> Judge:
    def judge(stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        messages = [Message(role="system", content=system), Message(role="user", content=prefix)]
        decisions = llm.decide_batch(stage, messages, questions, labels=LABELS)
        return [(d.label == LABELS[0], float(d.prob)) for d in decisions]

    return judge
