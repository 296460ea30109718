"""The per-stage adapter map (A1–A12 plus the context sub-decisions): training signals and adapter routes.

Every distinct cognitive task of the pipeline gets its own LoRA adapter trained on its own input/output
distribution. The stage registry (`pipeline.stages.registry`) says, per stage, what goes in, what comes out, which
tier serves it, which training signal labels its pairs and the adapter's default name; this module defines the
signals, labels logged calls by them, and resolves which adapter file each stage routes to. `cra adapters list`
shows the routes against the workspace config; `cra curate-data` and `cra audit` use the labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from cra.pipeline.calllog import OutcomeRow
from cra.pipeline.config import Config, ConfigError
from cra.pipeline.stages.registry import STAGE_SPECS, spec_for

Label = Literal["positive", "negative", "unknown"]
LABELS: tuple[Label, ...] = ("positive", "negative", "unknown")

# Downstream facts an outcome row can establish. "edit_applied" is the editor's answer to the proposed edit.
Fact = Literal["compiled", "tests_passed", "edit_applied"]


class Signal(msgspec.Struct, frozen=True):
    """The downstream facts that judge a stage's output. The first fact is the primary one: without it observed
    the pair stays unlabelled; any observed fact that is False makes it negative."""

    name: str
    facts: tuple[Fact, ...]
    description: str


SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in (
        Signal("compiled_and_tests_passed", ("compiled", "tests_passed", "edit_applied"),
               "the code compiled and its tests passed (when tests ran); the edit was not rejected"),
        Signal("tests_compiled", ("compiled", "edit_applied"),
               "the generated tests compiled; the edit was not rejected"),
        Signal("edit_applied", ("edit_applied",),
               "the proposed edit was applied in the editor (rejected: negative)"),
        Signal("symbol_used", ("edit_applied",),
               "the symbol/file it judged was part of an edit the user accepted"),
    )
}


def outcome_facts(outcome: OutcomeRow) -> dict[Fact, bool | None]:
    """What the outcome establishes; None where it says nothing (no tests ran, edit not answered yet)."""
    edit = {"applied": True, "rejected": False}.get(outcome.edit_status or "")
    return {"compiled": outcome.compiled, "tests_passed": outcome.tests_passed, "edit_applied": edit}


def label_for(stage: str, outcome: OutcomeRow) -> Label:
    """Label a stage's output by its task's outcome, following the stage's training signal."""
    facts = outcome_facts(outcome)
    observed = [facts[f] for f in SIGNALS[spec_for(stage).signal].facts]
    if any(v is False for v in observed):
        return "negative"
    if observed[0] is None:
        return "unknown"
    return "positive"


def outcome_failed(outcome: OutcomeRow) -> bool:
    """The audit's downstream failure: not compiled, tests failed, or the edit rejected."""
    return outcome.compiled is False or outcome.tests_passed is False or outcome.edit_status == "rejected"


class AdapterRoute(msgspec.Struct):
    stage: str
    code: str
    tier: int
    role: str
    base_model: str
    adapter: str | None  # the file the routing table (or a stage override) names; None: base model only
    exists: bool | None  # None when no adapter is routed
    default_file: str
    signal: str


def routes(config: Config, root: str | Path) -> list[AdapterRoute]:
    """Which adapter file each (base model, stage) routes to under `config`, and whether that file exists."""
    out: list[AdapterRoute] = []
    for spec in STAGE_SPECS.values():
        stage_cfg = config.stage(spec.name)
        if stage_cfg.role not in config.models:
            raise ConfigError(f"stage {spec.name!r} uses role {stage_cfg.role!r}, which has no model")
        adapter = config.adapter_for(spec.name)
        exists: bool | None = None
        if adapter:
            # Same resolution as the router: user-relative, then workspace-relative.
            path = Path(os.path.expanduser(adapter))
            if not path.is_absolute():
                path = Path(root) / path
            adapter, exists = str(path), path.is_file()
        out.append(AdapterRoute(stage=spec.name, code=spec.code, tier=spec.tier, role=stage_cfg.role,
                                base_model=config.models[stage_cfg.role].model, adapter=adapter, exists=exists,
                                default_file=spec.default_file, signal=spec.signal))
    return out
