"""The per-stage adapter map (A1–A12 plus the context sub-decisions) as data.

Every distinct cognitive task of the pipeline gets its own LoRA adapter trained on its own input/output
distribution; this map says, per stage, what goes in, what comes out, which tier serves it, which downstream
fact labels its training pairs, and the adapter's default name. `cra adapters list` shows it against the
workspace config; `cra curate-data` and `cra audit` use the training signals to label logged calls.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import msgspec

from cra.pipeline.calllog import OutcomeRow
from cra.pipeline.config import Config, ConfigError

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


class StageSpec(msgspec.Struct, frozen=True):
    stage: str  # the pipeline stage name (pipeline.config.STAGES)
    code: str  # A1..A12; sub-decisions share their parent's code
    tier: int  # 0: small binary classifier base; 1: the generalist base
    mode: Literal["generate", "structured", "decide"]
    input: str
    output: str
    signal: str  # key of SIGNALS
    question: str  # the seeds' training-signal question, for people reading the map
    default_adapter: str  # adapter name; the file is `<default_adapter>.gguf`
    parent: str | None = None  # the coarse stage a sub-decision refines

    @property
    def default_file(self) -> str:
        return f"{self.default_adapter}.gguf"

    @property
    def is_decision(self) -> bool:
        return self.mode == "decide"


def _spec(stage: str, code: str, tier: int, mode: Literal["generate", "structured", "decide"], input: str,
          output: str, signal: str, question: str, parent: str | None = None) -> StageSpec:
    # "a6-implement", "a11-scope-dependency": the code keeps files sortable, the stage keeps them readable.
    return StageSpec(stage=stage, code=code, tier=tier, mode=mode, input=input, output=output, signal=signal,
                     question=question, default_adapter=f"{code.lower()}-{stage.replace('_', '-')}", parent=parent)


ADAPTER_MAP: dict[str, StageSpec] = {
    s.stage: s
    for s in (
        _spec("meta_plan", "A1", 1, "structured", "task description + context",
              "parts with dependency edges", "compiled_and_tests_passed",
              "did the downstream parts succeed?"),
        _spec("part_plan", "A2", 1, "structured", "part description + context", "implementation steps",
              "compiled_and_tests_passed", "did the steps execute without adjustment loops?"),
        _spec("scaffold", "A3", 1, "generate", "plan + context",
              "types, signatures, Doxygen contracts", "compiled_and_tests_passed",
              "did the implementations compile and their tests pass?"),
        _spec("adjustment", "A4", 1, "structured", "failures + prior changes + remaining steps",
              "revised steps", "compiled_and_tests_passed", "did the revised steps succeed?"),
        _spec("task_analysis", "A5", 1, "structured", "raw task + repository file tree",
              "task type, seed symbols, keywords, intent", "symbol_used",
              "did retrieval find the files the accepted edit needed?"),
        _spec("implement", "A6", 1, "generate", "scaffold + the function's doc comment + types",
              "one function body", "compiled_and_tests_passed",
              "does it compile and pass the function's tests?"),
        _spec("test_generation", "A7", 1, "generate", "scaffold + the function's doc comment",
              "test function(s)", "tests_compiled", "do the tests compile?"),
        _spec("precision", "A8", 1, "structured", "task summary + symbols with signatures",
              "detail level per symbol", "symbol_used",
              "were the symbols needed at that detail level (edit accepted)?"),
        _spec("documentation", "A9", 1, "generate", "source + task context", "Doxygen comment edits",
              "edit_applied", "was the documentation edit applied?"),
        _spec("refilter", "A10", 1, "structured", "file list with sizes + budget", "the files to keep",
              "compiled_and_tests_passed", "did the action succeed with the kept files?"),
        _spec("scope", "A11", 0, "decide", "task summary + one file description", "relevant / irrelevant",
              "symbol_used", "was the file actually needed?"),
        _spec("routing", "A12", 0, "decide", "task summary + one optional stage", "include / exclude",
              "edit_applied", "did the selected stages produce an accepted edit?"),
        _spec("scope_dependency", "A11", 0, "decide", "task summary + a file the seed includes",
              "relevant / irrelevant", "symbol_used", "was the dependency actually needed?", parent="scope"),
        _spec("scope_cochange", "A11", 0, "decide", "task summary + a file that changes with the seed",
              "relevant / irrelevant", "symbol_used", "was the co-changing file actually needed?",
              parent="scope"),
        _spec("scope_metadata", "A11", 0, "decide", "task summary + a file matching the task keywords",
              "relevant / irrelevant", "symbol_used", "was the keyword-matched file actually needed?",
              parent="scope"),
        _spec("precision_relevant", "A8", 0, "decide", "task summary + one symbol", "relevant or excluded",
              "symbol_used", "was the symbol used at all?", parent="precision"),
        _spec("precision_primary", "A8", 0, "decide", "task summary + one relevant symbol", "primary or not",
              "symbol_used", "was the symbol needed in full?", parent="precision"),
        _spec("precision_supporting", "A8", 0, "decide", "task summary + one non-primary symbol",
              "supporting or type context", "symbol_used", "was the symbol needed as a signature?",
              parent="precision"),
    )
}

class UnknownStageError(ValueError):
    """A stage name that is not in the adapter map."""


def spec_for(stage: str) -> StageSpec:
    try:
        return ADAPTER_MAP[stage]
    except KeyError:
        raise UnknownStageError(f"unknown pipeline stage {stage!r} (stages: {', '.join(ADAPTER_MAP)})") from None


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
    for spec in ADAPTER_MAP.values():
        stage_cfg = config.stage(spec.stage)
        if stage_cfg.role not in config.models:
            raise ConfigError(f"stage {spec.stage!r} uses role {stage_cfg.role!r}, which has no model")
        adapter = config.adapter_for(spec.stage)
        exists: bool | None = None
        if adapter:
            # Same resolution as the router: user-relative, then workspace-relative.
            path = Path(os.path.expanduser(adapter))
            if not path.is_absolute():
                path = Path(root) / path
            adapter, exists = str(path), path.is_file()
        out.append(AdapterRoute(stage=spec.stage, code=spec.code, tier=spec.tier, role=stage_cfg.role,
                                base_model=config.models[stage_cfg.role].model, adapter=adapter, exists=exists,
                                default_file=spec.default_file, signal=spec.signal))
    return out
