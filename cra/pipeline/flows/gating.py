"""MoMA-style three-stage routing for the pipeline's stages.

Stage 1, does the task need a model at all? Deterministic rules answer first (a trivial accessor's doc comment
comes from its code, a prototype the header already has is not scaffolded again, a plan without free text needs
no task analysis). Stage 2, which tier? The stage's configured role, defaulting to tier 0 for decisions and tier 1
for generation (`tier_for`). Stage 3, is the output valid? It must parse, keep its signature, compile and add no
warnings (`check_edit`); a failure goes back into the next attempt's prompt, at most `validation.max_rounds` times.

Optional stages (task analysis, the adjustment step's A4 call) are included or excluded per task: clear cases by
rule, the rest by A12 decisions (one batched tier-0 call) when a routing adapter is configured, otherwise by the
deterministic defaults below.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec

from cra.pipeline.config import Config
from cra.pipeline.context import parse_source
from cra.pipeline.context.symbols import FUNCTION, PROTOTYPE
from cra.pipeline.llm import StageLLM
from cra.pipeline.sandbox import Limits, compile_unit, new_warnings, parse_diagnostics
from cra.pipeline.sandbox.flags import flags_for, rebase_flags
from cra.pipeline.sandbox.runner import make_sandbox_dir, remove_sandbox_dir, run_sandboxed
from cra.pipeline.sandbox.validate import WORK_DIR, CompileResult
from cra.pipeline.sandbox.workspace_copy import copy_workspace, relative_inside
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


class EditCheck(msgspec.Struct):
    """Stage 3's verdict on one edited file. `failure` is the text the next attempt's prompt gets."""

    ok: bool
    parsed: bool
    compiled: bool | None
    message: str
    failure: str = ""


# ---- stage 1 + A12: include optional stages ----------------------------------------------------------------------
def routing_enabled(config: Config) -> bool:
    """A12 decides as `[decisions] mode` says: by default only with a trained routing adapter, since the base
    model's include/exclude guesses are worse than the deterministic defaults."""
    return config.decisions.use_model(config.adapter_for(a12.STAGE) is not None)


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
        decisions = llm.decide_batch(a12.STAGE, prefix, [a12.question(s) for s in ambiguous], labels=a12.LABELS)
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


# ---- stage 3: validate -----------------------------------------------------------------------------------------
def compile_changes(root: str | Path, unit: str, changed: dict[str, str], *, compiler: str, default_flags: list[str],
                    limits: Limits) -> CompileResult:
    """Compile `unit` after writing every file of `changed` (a header and its source together) in a sandboxed
    copy; warnings are compared with the unchanged tree so only new ones count."""
    started = time.monotonic()
    root_p = Path(root).resolve()
    rel = relative_inside(root_p, unit)
    if len(changed) == 1 and relative_inside(root_p, next(iter(changed))) == rel:
        return compile_unit(root_p, rel, next(iter(changed.values())), compiler=compiler,
                            flags=flags_for(root_p, rel, default_flags).flags, limits=limits)
    flags = flags_for(root_p, rel, default_flags).flags
    runs = []
    for edits in ({}, changed):
        sandbox = make_sandbox_dir()
        try:
            copy_workspace(root_p, sandbox, changed=edits)
            (sandbox / WORK_DIR).mkdir(exist_ok=True)
            if not (sandbox / rel).is_file():
                runs.append((None, [], ""))
                continue
            argv = [compiler, *rebase_flags(flags, root_p, sandbox), "-fdiagnostics-color=never", "-fsyntax-only",
                    rel.as_posix()]
            result = run_sandboxed(argv, sandbox, limits)
            runs.append((result, parse_diagnostics(result.stderr, sandbox),
                         result.stderr.replace(str(sandbox) + "/", "")))
        finally:
            remove_sandbox_dir(sandbox)
    (_, before, _), (after_run, after, stderr) = runs
    ok = after_run is not None and after_run.returncode == 0 and after_run.killed_reason is None and \
        not any(d.severity == "error" for d in after)
    return CompileResult(ok=ok, diagnostics=after, new_warnings=new_warnings(before, after), stderr=stderr,
                         seconds=round(time.monotonic() - started, 4), flags=flags,
                         killed_reason=after_run.killed_reason if after_run is not None else "unit missing")


def check_edit(root: str | Path, path: str, old_text: str, new_text: str, *, config: Config, limits: Limits,
               function: str | None = None, extra: dict[str, str] | None = None,
               allow_new_warnings: bool = False) -> EditCheck:
    """Parses (no new syntax errors), keeps `function`'s signature, compiles, adds no warnings."""
    old_index = parse_source(path, old_text.encode("utf-8", errors="surrogateescape"))
    new_index = parse_source(path, new_text.encode("utf-8", errors="surrogateescape"))
    if len(new_index.error_lines) > len(old_index.error_lines):
        fresh = sorted(set(new_index.error_lines) - set(old_index.error_lines)) or new_index.error_lines
        message = f"the edited file does not parse (syntax error on line {fresh[0] + 1})"
        return EditCheck(ok=False, parsed=False, compiled=None, message=message, failure=message)
    if function is not None:
        before = [s.signature for s in old_index.symbols if s.name == function and s.kind == FUNCTION]
        after = [s.signature for s in new_index.symbols if s.name == function and s.kind == FUNCTION]
        if before and after != before[:1]:
            message = (f"the signature of {function} changed (was `{before[0]}`, now "
                       f"`{after[0] if after else 'missing'}`); keep it exactly")
            return EditCheck(ok=False, parsed=True, compiled=None, message=message, failure=message)
    units = [p for p in [path, *(extra or {})] if p.endswith(".c")] or [path]
    changed = {path: new_text, **(extra or {})}
    for unit in units:
        result = compile_changes(root, unit, changed, compiler=config.validation.compiler,
                                 default_flags=config.validation.flags, limits=limits)
        if not result.ok:
            errors = [d for d in result.diagnostics if d.severity == "error"] or result.diagnostics
            summary = "; ".join(d.render() for d in errors[:3]) or result.stderr.strip()[:300] or "compiler failed"
            return EditCheck(ok=False, parsed=True, compiled=False, message=f"does not compile: {summary}",
                             failure=result.stderr.strip()[:1200] or summary)
        if result.new_warnings and not allow_new_warnings:
            summary = "; ".join(d.render() for d in result.new_warnings[:3])
            return EditCheck(ok=False, parsed=True, compiled=True, message=f"compiles with new warnings: {summary}",
                             failure=summary)
    return EditCheck(ok=True, parsed=True, compiled=True, message="parses and compiles without new warnings")
