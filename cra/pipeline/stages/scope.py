"""A11 scope judgment: is a candidate file relevant to the task? One decision per file, asked per retrieval tier
(dependency, co-change, metadata) by pipeline.context.scope, which settles the clear cases by rule. This module
holds the stage's prompt, labels and the judge that routes each tier to its own stage (and adapter)."""

from __future__ import annotations

from cra.pipeline.context import Judge
from cra.pipeline.context.judge import JUDGE_SYSTEM_PROMPT
from cra.pipeline.context.scope import STAGE_BY_TIER
from cra.pipeline.llm import StageLLM
from cra.pipeline.stages.judging import LABELS, stage_judge

STAGE = "scope"
CODE = "A11"
DEFAULT_ADAPTER = "a11-scope"
MODE = "decision"

SYSTEM = (
    f"{JUDGE_SYSTEM_PROMPT} A file is relevant when the task needs something it defines or declares; a file "
    "that only shares words with the task is not."
)
TIER_STAGES = dict(STAGE_BY_TIER)
__all__ = ["CODE", "DEFAULT_ADAPTER", "LABELS", "MODE", "STAGE", "SYSTEM", "TIER_STAGES", "judge"]


def judge(llm: StageLLM) -> Judge:
    return stage_judge(llm, SYSTEM)
