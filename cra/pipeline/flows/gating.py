"""Stage gating, MoMA-style: which of a flow's stages run for this task, and on which tier.

Stage 1, does the task need a model at all? Deterministic rules answer first (a trivial accessor's doc comment
comes from its code, a prototype the header already has is not scaffolded again, a plan without free text needs
no task analysis). Stage 2, which tier? The stage's configured role, defaulting to tier 0 for decisions and tier 1
for generation (`tier_for`). Stage 3, is the output valid, is the sandbox's `check_change` (each flow's validation
step); a failure goes back into the next attempt's prompt, at most `validation.max_rounds` times.

Optional stages (task analysis, the adjustment step's A4 call) are included or excluded per task: clear cases by
rule, the rest by A12 decisions (one batched tier-0 call) when a routing adapter is configured, otherwise by the
deterministic defaults below.
"""

from __future__ import annotations

import msgspec

from cra.pipeline.config import Config
from cra.pipeline.context import parse_source
from cra.pipeline.context.symbols import FUNCTION, PROTOTYPE
from cra.pipeline.llm import StageLLM
from cra.pipeline.stages import routing as a12

# Stages a task may skip, and what happens when no rule and no routing model settles it.
OPTIONAL_DEFAULTS: dict[str, bool] = {"task_analysis": True, "adjustment": True}


class RoutingDecision(msgspec.Struct, frozen=True):
    stage: str
    include: bool
    decided_by: str  # "rule" | "default" | "routing"
    prob: float = 1.0

    def note(self) -> str:
        verb = "include" if self.include else "exclude"
        return f"{self.stage}: {verb} ({self.decided_by}, p={self.prob:.2f})"


class TierChoice(msgspec.Struct, frozen=True):
    stage: str
    tier: str  # "tier0" | "tier1" | "custom" (a stage pinned to a role outside the tiers)
    role: str
    model: str
    adapter: str | None


# ---- stage 1 + A12: include optional stages ----------------------------------------------------------------------
def routing_enabled(config: Config) -> bool:
    """A12 decides as `[decisions] mode` says: by default only with a trained routing adapter, since the base
    model's include/exclude guesses are worse than the deterministic defaults."""
    return config.decisions.use_model(config.adapter_for(a12.SPEC.name) is not None)


def decide_optional(llm: StageLLM, config: Config, rules: dict[str, bool | None], *, action: str, task: str,
                    target: str) -> dict[str, RoutingDecision]:
    """`rules`: stage → True/False when a deterministic rule settles it, None when it is ambiguous."""
    out: dict[str, RoutingDecision] = {}
    ambiguous: list[str] = []
    for stage, settled in rules.items():
        if stage not in OPTIONAL_DEFAULTS:
            raise ValueError(f"{stage!r} is not an optional stage (optional: {', '.join(OPTIONAL_DEFAULTS)})")
        if settled is not None:
            out[stage] = RoutingDecision(stage, settled, "rule")
        elif not routing_enabled(config):
            out[stage] = RoutingDecision(stage, OPTIONAL_DEFAULTS[stage], "default")
        else:
            ambiguous.append(stage)
    if ambiguous:
        prefix = a12.build_prefix(action=action, task=task, target=target)
        decisions = llm.decide_batch(a12.SPEC.name, prefix, [a12.question(s) for s in ambiguous], labels=a12.LABELS)
        for stage, decision in zip(ambiguous, decisions, strict=True):
            out[stage] = RoutingDecision(stage, decision.label == a12.LABELS[0], "routing", float(decision.prob))
    return out


def prototype_exists(header_text: str, header_path: str, name: str) -> bool:
    """Stage 1 for scaffold: the header already declares (or defines) `name`."""
    index = parse_source(header_path, header_text.encode("utf-8", errors="surrogateescape"))
    return any(s.name == name and s.kind in (PROTOTYPE, FUNCTION) for s in index.symbols)


# ---- stage 2: tier ----------------------------------------------------------------------------------------------
def tier_for(config: Config, stage: str) -> TierChoice:
    role = config.stage(stage).role
    tier = "tier0" if role == config.tiers.tier0 else "tier1" if role == config.tiers.tier1 else "custom"
    return TierChoice(stage=stage, tier=tier, role=role, model=config.models[role].model,
                      adapter=config.adapter_for(stage))
