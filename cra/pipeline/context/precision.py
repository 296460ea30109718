"""Precision cascade: per symbol, relevant? → primary? → supporting? → else type_context.

Graph distance, reference counts and PageRank settle most symbols by rule (the target is primary, what it calls
is supporting, the types it uses are type_context, unreachable symbols of unrelated files are out); the judge only
sees the ambiguous rest, one batched call per question, and most symbols stop at the first question."""

from __future__ import annotations

import msgspec

from cra.pipeline.context import symbols as k
from cra.pipeline.context.judge import Judge, ask, decides
from cra.pipeline.context.retrieval import FAR, SEED, TIERS, SymbolCandidate

PRIMARY = "primary"
SUPPORTING = "supporting"
TYPE_CONTEXT = "type_context"
EXCLUDED = "excluded"
LEVELS = (PRIMARY, SUPPORTING, TYPE_CONTEXT, EXCLUDED)

STAGE_RELEVANT = "precision_relevant"
STAGE_PRIMARY = "precision_primary"
STAGE_SUPPORTING = "precision_supporting"
RELEVANT_QUESTION = "Is it needed to do the task?"  # after the subject, in STAGE_RELEVANT's questions


class PrecisionDecision(msgspec.Struct):
    candidate: SymbolCandidate
    level: str
    decided_by: str  # "rule" or the judge stage that settled it
    priority: tuple[int, int, float, int, str, int]  # lower packs first


def _natural_level(symbol: k.Symbol) -> str:
    """The cheapest useful level: a type's definition, otherwise a declaration."""
    return TYPE_CONTEXT if symbol.kind in k.TYPE_KINDS else SUPPORTING


def _rule(candidate: SymbolCandidate) -> str | None:
    symbol = candidate.symbol
    if candidate.distance == 0:
        return PRIMARY
    if candidate.distance == 1:
        return _natural_level(symbol)
    if candidate.distance == 2 and (symbol.kind in k.TYPE_KINDS or symbol.kind in (k.MACRO, k.MACRO_FUNCTION)):
        return _natural_level(symbol)
    if candidate.sibling_uses >= 2 or candidate.file_uses >= 5:
        return _natural_level(symbol)  # several neighbouring functions use it: a likely need, no question asked
    unlinked = not candidate.sibling_uses and not candidate.file_uses and candidate.keyword_hits == 0
    if candidate.distance >= FAR and candidate.tier != SEED and unlinked:
        return EXCLUDED
    return None


def _priority(candidate: SymbolCandidate) -> tuple[int, int, float, int, str, int]:
    """Target, then what it uses directly, then the rest by evidence: neighbours' use, keyword hits, rank."""
    symbol = candidate.symbol
    bucket = min(candidate.distance, 2)
    evidence = (
        3.0 * candidate.uses
        + 2.0 * candidate.sibling_uses
        + 0.3 * min(candidate.file_uses, 10)
        + candidate.keyword_hits
        + min(candidate.rank, 5.0) / 5
    )
    return (bucket, 0, -evidence, TIERS.index(candidate.tier), symbol.file, symbol.start_byte)


def question_subject(symbol: k.Symbol) -> str:
    """How a question names its symbol (training data maps questions back to symbols by it)."""
    return f"Symbol `{symbol.signature}` ({symbol.kind} in {symbol.file})."


def _question(candidate: SymbolCandidate, what: str) -> str:
    return f"{question_subject(candidate.symbol)} {what}"


def classify(
    candidates: list[SymbolCandidate], prefix: str, judge: Judge | None = None
) -> list[PrecisionDecision]:
    """Rules first; the judge gets the ambiguous rest, one question of the cascade at a time. A question the judge
    does not decide (see `judge.decides`) is settled as without a judge: the symbol at its cheapest useful level."""
    decided: dict[int, PrecisionDecision] = {}
    ambiguous: list[int] = []
    for i, candidate in enumerate(candidates):
        level = _rule(candidate)
        if level is not None:
            decided[i] = PrecisionDecision(candidate, level, "rule", _priority(candidate))
        else:
            ambiguous.append(i)
    kept = ambiguous
    if decides(judge, STAGE_RELEVANT) and ambiguous:
        relevant = ask(
            judge, STAGE_RELEVANT, prefix,  # type: ignore[arg-type]
            [_question(candidates[i], RELEVANT_QUESTION) for i in ambiguous],
        )
        kept = [i for i, (yes, _) in zip(ambiguous, relevant, strict=True) if yes]
        for i, (yes, _) in zip(ambiguous, relevant, strict=True):
            if not yes:
                decided[i] = PrecisionDecision(candidates[i], EXCLUDED, STAGE_RELEVANT, _priority(candidates[i]))
    rest = kept
    if decides(judge, STAGE_PRIMARY) and kept:
        primary = ask(
            judge, STAGE_PRIMARY, prefix,  # type: ignore[arg-type]
            [_question(candidates[i], "Is its full text needed (not only its declaration)?") for i in kept],
        )
        rest = []
        for i, (yes, _) in zip(kept, primary, strict=True):
            if yes:
                decided[i] = PrecisionDecision(candidates[i], PRIMARY, STAGE_PRIMARY, _priority(candidates[i]))
            else:
                rest.append(i)
    if decides(judge, STAGE_SUPPORTING) and rest:
        supporting = ask(
            judge, STAGE_SUPPORTING, prefix,  # type: ignore[arg-type]
            [_question(candidates[i], "Are its declaration and documentation needed?") for i in rest],
        )
        for i, (yes, _) in zip(rest, supporting, strict=True):
            level = SUPPORTING if yes else TYPE_CONTEXT
            decided[i] = PrecisionDecision(candidates[i], level, STAGE_SUPPORTING, _priority(candidates[i]))
    for i in rest:
        if i not in decided:
            # No model for this question: offer the symbol at its cheapest useful level; packing ranks it after
            # graph symbols.
            decided[i] = PrecisionDecision(candidates[i], _natural_level(candidates[i].symbol), "rule",
                                           _priority(candidates[i]))
    return [decided[i] for i in range(len(candidates))]
