"""Scope judgment: one in/out decision per candidate file, per tier. Deterministic rules settle the clear cases; the
ambiguous rest goes to the judge in one batched call per tier (stages scope_dependency/_cochange/_metadata)."""

from __future__ import annotations

import re

import msgspec

from cra.pipeline.context.judge import Judge, ask, decides
from cra.pipeline.context.retrieval import COCHANGE, DEPENDENCY, FAR, METADATA, SEED, FileCandidate, Retrieval

STAGE_BY_TIER = {DEPENDENCY: "scope_dependency", COCHANGE: "scope_cochange", METADATA: "scope_metadata"}
_QUESTION_BY_TIER = {
    DEPENDENCY: "The file `{path}` is a dependency of the target ({why}). Is it relevant to the task?",
    COCHANGE: "The file `{path}` historically changes together with the target's file ({why}). Is it relevant?",
    METADATA: "The file `{path}` matches task keywords ({why}). Is it relevant to the task?",
}


_QUESTION_FILE = re.compile(r"The file `([^`]+)` ")


def question_file(question: str) -> str | None:
    """The file a scope question asks about (training data maps questions back to files by it)."""
    found = _QUESTION_FILE.match(question)
    return found.group(1) if found else None


class ScopeDecision(msgspec.Struct):
    path: str
    tier: str
    included: bool
    decided_by: str  # "rule" or the judge stage name
    confidence: float


def _rule(file: FileCandidate) -> bool | None:
    """True/False when the features settle it, None when ambiguous."""
    if file.tier == SEED or file.include_distance <= 1:
        return True
    if file.min_distance <= 1:
        return True  # hosts a symbol the target uses directly
    if (
        file.graph_symbols == 0
        and file.neighbour_symbols == 0
        and file.keyword_hits == 0
        and file.cochange == 0
        and file.include_distance >= FAR
    ):
        return False  # no overlap with the target at all
    return None


def _fallback(file: FileCandidate) -> bool:
    """Without a judge: keep what the dependency graph reaches, strong co-change, or several keyword hits."""
    if file.graph_symbols > 0 or file.neighbour_symbols > 0:
        return True
    if file.tier == COCHANGE:
        return file.cochange >= 2 and file.keyword_hits > 0
    return file.keyword_hits >= 2


def _why(file: FileCandidate) -> str:
    parts = []
    if file.include_distance < FAR:
        parts.append(f"included {file.include_distance} levels deep")
    if file.graph_symbols:
        parts.append(f"{file.graph_symbols} symbols used, nearest {file.min_distance} hops away")
    if file.cochange:
        parts.append(f"{file.cochange} shared commits")
    if file.neighbour_symbols:
        parts.append(f"{file.neighbour_symbols} symbols used by code next to the target")
    if file.keyword_hits:
        parts.append(f"{file.keyword_hits} keyword hits")
    return ", ".join(parts) or "no direct link"


def judge_scope(retrieval: Retrieval, prefix: str, judge: Judge | None = None) -> dict[str, ScopeDecision]:
    decisions: dict[str, ScopeDecision] = {}
    ambiguous: dict[str, list[FileCandidate]] = {}
    for file in retrieval.files:
        settled = _rule(file)
        if settled is not None:
            decisions[file.path] = ScopeDecision(file.path, file.tier, settled, "rule", 1.0)
        elif not decides(judge, STAGE_BY_TIER.get(file.tier, "scope_metadata")):
            decisions[file.path] = ScopeDecision(file.path, file.tier, _fallback(file), "rule", 0.5)
        else:
            ambiguous.setdefault(file.tier, []).append(file)
    for tier, files in ambiguous.items():
        stage = STAGE_BY_TIER.get(tier, "scope_metadata")
        template = _QUESTION_BY_TIER.get(tier, _QUESTION_BY_TIER[METADATA])
        questions = [template.format(path=f.path, why=_why(f)) for f in files]
        for file, (yes, prob) in zip(files, ask(judge, stage, prefix, questions), strict=True):  # type: ignore[arg-type]
            decisions[file.path] = ScopeDecision(file.path, tier, yes, stage, prob)
    return decisions
