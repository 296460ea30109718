"""A8 precision classification. The cascade itself (relevant? → primary? → supporting? → type_context) lives in
pipeline.context.precision, which settles most symbols by rule; this module holds the stage's spec (with one
sub-decision, and adapter, per cascade question), its instruction, labels and the judge."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cra.pipeline.stages.judging import LABELS, stage_judge
from cra.pipeline.stages.spec import StageSpec

if TYPE_CHECKING:
    from cra.pipeline.context import Judge
    from cra.pipeline.llm import StageLLM

# Follows the context package's judge prompt in the system message (`judging.stage_judge`).
SYSTEM = (
    "A symbol is relevant when the task cannot be done well without seeing it; primary when its full text is "
    "needed; supporting when its declaration and documentation suffice."
)


def _question(name: str, description: str, input: str, output: str, question: str) -> StageSpec:
    return StageSpec(name=name, code="A8", mode="decision", parent="precision", description=f"cascade: {description}",
                     input=input, output=output, labels=LABELS, signal="symbol_used", question=question)


# The cascade's questions in the order pipeline.context.precision asks them (its STAGE_RELEVANT, STAGE_PRIMARY,
# STAGE_SUPPORTING).
SPEC = StageSpec(
    name="precision", code="A8", mode="decision", description="precision classification (cascade below)",
    input="task summary + symbols with signatures", output="detail level per symbol", labels=LABELS,
    signal="symbol_used", question="were the symbols needed at that detail level (edit accepted)?",
    subdecisions=(
        _question("precision_relevant", "is the symbol relevant?", "task summary + one symbol",
                  "relevant or excluded", "was the symbol used at all?"),
        _question("precision_primary", "is it primary?", "task summary + one relevant symbol", "primary or not",
                  "was the symbol needed in full?"),
        _question("precision_supporting", "is it supporting?", "task summary + one non-primary symbol",
                  "supporting or type context", "was the symbol needed as a signature?"),
    ))
CASCADE = tuple(s.name for s in SPEC.subdecisions)


def judge(llm: StageLLM) -> Judge:
    return stage_judge(llm, SYSTEM)
