"""A11 scope judgment: is a candidate file relevant to the task? One decision per file, asked per retrieval tier
(dependency, co-change, metadata) by pipeline.context.scope, which settles the clear cases by rule. This module
holds the stage's spec (with one sub-decision, and adapter, per tier), its instruction, labels and the judge."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cra.pipeline.stages.judging import LABELS, stage_judge
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.context import Judge
    from cra.pipeline.llm import StageLLM

# Follows the context package's judge prompt in the system message (`judging.stage_judge`).
SYSTEM = (
    "A file is relevant when the task needs something it defines or declares; a file that only shares words with "
    "the task is not."
)


def _tier(name: str, tier: str, input: str, question: str) -> StageSpec:
    return StageSpec(name=name, code="A11", mode="decision", parent="scope", description=f"scope judgment, {tier} tier",
                     input=input, output="relevant / irrelevant", labels=LABELS, signal="symbol_used",
                     question=question)


# The per-tier stages pipeline.context.scope asks under (its STAGE_BY_TIER), in retrieval order.
SPEC = StageSpec(
    name="scope", code="A11", mode="decision", description="scope judgment (per-tier decisions below)",
    input="task summary + one file description", output="relevant / irrelevant", labels=LABELS,
    signal="symbol_used", question="was the file actually needed?",
    subdecisions=(
        _tier("scope_dependency", "dependency", "task summary + a file the seed includes",
              "was the dependency actually needed?"),
        _tier("scope_cochange", "co-change", "task summary + a file that changes with the seed",
              "was the co-changing file actually needed?"),
        _tier("scope_metadata", "metadata", "task summary + a file matching the task keywords",
              "was the keyword-matched file actually needed?"),
    ))
TIER_STAGES = tuple(s.name for s in SPEC.subdecisions)


def judge(llm: StageLLM) -> Judge:
    return stage_judge(llm, SYSTEM)
