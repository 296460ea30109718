"""A8 precision classification. The cascade itself (relevant? → primary? → supporting? → type_context) lives in
pipeline.context.precision, which settles most symbols by rule; this module holds the stage's prompt, labels and
the judge that routes each cascade question to its own stage (and adapter)."""

from __future__ import annotations

from cra.pipeline.context import Judge
from cra.pipeline.context.judge import JUDGE_SYSTEM_PROMPT
from cra.pipeline.context.precision import STAGE_PRIMARY, STAGE_RELEVANT, STAGE_SUPPORTING
from cra.pipeline.llm import StageLLM
from cra.pipeline.stages.judging import LABELS, stage_judge

STAGE = "precision"
CODE = "A8"
DEFAULT_ADAPTER = "a8-precision"
MODE = "decision"

SYSTEM = (
    f"{JUDGE_SYSTEM_PROMPT} A symbol is relevant when the task cannot be done well without seeing it; primary "
    "when its full text is needed; supporting when its declaration and documentation suffice."
)
CASCADE = (STAGE_RELEVANT, STAGE_PRIMARY, STAGE_SUPPORTING)
__all__ = ["CASCADE", "CODE", "DEFAULT_ADAPTER", "LABELS", "MODE", "STAGE", "SYSTEM", "judge"]


def judge(llm: StageLLM) -> Judge:
    return stage_judge(llm, SYSTEM)
