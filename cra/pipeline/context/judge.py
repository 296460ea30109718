"""The yes/no judge the scope and precision stages ask about ambiguous candidates, and its engine adapter."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cra.pipeline.engine.types import Engine

JUDGE_SYSTEM_PROMPT = (
    "You select context for a C coding task. Answer each question about one candidate with yes or no."
)


class Judge(Protocol):
    def __call__(self, stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        """One answer (yes?, probability of the chosen label) per question, in order."""
        ...


def decides(judge: Judge | None, stage: str) -> bool:
    """Whether `judge` answers `stage`'s questions. A judge may name the stages it decides in a `stages`
    attribute (the pipeline's, in `[decisions] mode = "auto"`, names those with a trained adapter); the other
    stages keep the deterministic rules. A judge without that attribute decides every stage."""
    if judge is None:
        return False
    stages = getattr(judge, "stages", None)
    return stages is None or stage in stages


class JudgeError(Exception):
    """The judge answered a different number of questions than it was asked."""


def ask(judge: Judge, stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
    if not questions:
        return []
    answers = list(judge(stage, prefix, questions))
    if len(answers) != len(questions):
        raise JudgeError(f"judge for stage {stage!r} answered {len(answers)} of {len(questions)} questions")
    return [(bool(yes), float(prob)) for yes, prob in answers]


def engine_judge(
    engine: Engine,
    model_spec: Any,
    adapters_for_stage: Mapping[str, Sequence[Any]] | Callable[[str], Sequence[Any]],
) -> Judge:
    """Back the Judge protocol with `engine.decide_batch`: one batched call per stage, the shared prefix
    (system prompt + task and target) evaluated once, LoRA adapter chosen per stage (empty = base model)."""
    from cra.pipeline.engine.types import Message  # the engine is optional for deterministic-only use

    def adapters(stage: str) -> tuple[Any, ...]:
        if callable(adapters_for_stage):
            return tuple(adapters_for_stage(stage) or ())
        return tuple(adapters_for_stage.get(stage, ()))

    def judge(stage: str, prefix: str, questions: list[str]) -> list[tuple[bool, float]]:
        messages = [Message(role="system", content=JUDGE_SYSTEM_PROMPT), Message(role="user", content=prefix)]
        decisions = engine.decide_batch(model_spec, adapters(stage), messages, questions, labels=("yes", "no"))
        return [(d.label == "yes", float(d.prob)) for d in decisions]

    return judge
