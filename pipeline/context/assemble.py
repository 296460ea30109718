"""`assemble`: retrieval tiers → scope judgment → precision cascade → budget packing, for one target symbol."""

from __future__ import annotations

import time

import msgspec

from pipeline.context import symbols as k
from pipeline.context.index import WorkspaceIndex
from pipeline.context.judge import Judge
from pipeline.context.packing import ContextItem, CountTokens, PackEntry, estimate_tokens, pack
from pipeline.context.precision import EXCLUDED, LEVELS, PRIMARY, SUPPORTING, PrecisionDecision, classify
from pipeline.context.render import render
from pipeline.context.retrieval import retrieve
from pipeline.context.scope import judge_scope
from pipeline.context.symbols import ContextError, Symbol


class ContextPack(msgspec.Struct):
    target: Symbol
    items: list[ContextItem]
    rendered: str
    tokens: int
    dropped: list[str]
    seconds: float


def _judge_prefix(target: Symbol, task_text: str) -> str:
    """Shared by every judge call of one assembly: the stable part first, so the engine reuses its KV."""
    task = task_text.strip() or f"Work on `{target.name}`."
    return f"Task: {task}\nTarget ({target.kind} in {target.file}):\n{target.signature}"


def _merge_nested(decisions: list[PrecisionDecision]) -> list[PrecisionDecision]:
    """A struct defined inside a typedef, or two variables of one declaration, share text: keep the outer symbol
    once, at the highest level and best priority any of them earned."""
    chosen = sorted(
        (d for d in decisions if d.level != EXCLUDED),
        key=lambda d: (d.candidate.symbol.file, d.candidate.symbol.start_byte, -d.candidate.symbol.end_byte),
    )
    merged: list[PrecisionDecision] = []
    for decision in chosen:
        symbol = decision.candidate.symbol
        outer = merged[-1] if merged else None
        if outer is not None:
            o = outer.candidate.symbol
            if o.file == symbol.file and o.start_byte <= symbol.start_byte and symbol.end_byte <= o.end_byte:
                if o.kind == k.FUNCTION and symbol.kind != k.FUNCTION and outer.candidate.distance == 0:
                    continue  # a type declared in the target's own signature is already in its text
                level = min(outer.level, decision.level, key=LEVELS.index)
                outer.level = level
                outer.priority = min(outer.priority, decision.priority)
                continue
        merged.append(decision)
    return merged


def assemble(
    index: WorkspaceIndex,
    path: str,
    symbol_name: str,
    *,
    budget: int,
    count_tokens: CountTokens | None = None,
    judge: Judge | None = None,
    task_text: str = "",
    use_git: bool = True,
) -> ContextPack:
    started = time.perf_counter()
    if budget <= 0:
        raise ContextError(f"token budget must be positive, got {budget}")
    rel = index._rel(path)
    if rel not in index.files:
        raise ContextError(f"{path!r} is not an indexed C/H file of {index.root!r}")
    target = index.function(rel, symbol_name) or index.symbol(rel, symbol_name)
    if target is None:
        raise ContextError(f"no symbol named {symbol_name!r} in {rel}")
    counter = count_tokens or estimate_tokens
    retrieval = retrieve(index, target, task_text, use_git=use_git)
    prefix = _judge_prefix(target, task_text)
    scope = judge_scope(retrieval, prefix, judge)
    in_scope = [c for c in retrieval.symbols if scope.get(c.symbol.file) is None or scope[c.symbol.file].included]
    decisions = _merge_nested(classify(in_scope, prefix, judge))
    entries: list[PackEntry] = []
    for decision in decisions:
        symbol = decision.candidate.symbol
        is_target = symbol.key == target.key
        entries.append(
            PackEntry(
                symbol=symbol,
                tier=decision.candidate.tier,
                precision=PRIMARY if is_target else decision.level,
                priority=decision.priority,
                text=render(symbol, PRIMARY if is_target else decision.level),
                required=is_target,
                bucket=decision.priority[0],
                evidence=-decision.priority[2],
            )
        )
    target_entry = next((e for e in entries if e.required), None)
    if target_entry is not None and counter(target_entry.text) > budget:
        # A target larger than the whole budget is shown by its declaration rather than failing outright.
        target_entry.precision = SUPPORTING
        target_entry.text = render(target, SUPPORTING)
    kept, dropped, rendered, tokens = pack(entries, budget, counter)
    kept.sort(key=lambda e: (e.symbol.file, e.symbol.start_byte, e.symbol.name_byte))
    items = [
        ContextItem(
            name=e.symbol.name,
            kind=e.symbol.kind,
            file=e.symbol.file,
            tier=e.tier,
            precision=e.precision,
            tokens=e.tokens,
            text=e.text,
            line=e.symbol.start_line,
        )
        for e in kept
    ]
    return ContextPack(
        target=target,
        items=items,
        rendered=rendered,
        tokens=tokens,
        dropped=[f"{e.symbol.file}:{e.symbol.name}" for e in sorted(dropped, key=lambda e: e.priority)],
        seconds=time.perf_counter() - started,
    )
