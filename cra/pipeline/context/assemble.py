"""`assemble`: retrieval tiers → scope judgment → precision cascade → budget packing, for one target symbol."""

from __future__ import annotations

import time

import msgspec

from cra.pipeline.context import symbols as k
from cra.pipeline.context.index import WorkspaceIndex
from cra.pipeline.context.judge import Judge
from cra.pipeline.context.packing import ContextItem, CountTokens, PackEntry, estimate_tokens, pack
from cra.pipeline.context.precision import EXCLUDED, LEVELS, PRIMARY, SUPPORTING, PrecisionDecision, classify
from cra.pipeline.context.render import render
from cra.pipeline.context.retrieval import retrieve
from cra.pipeline.context.scope import judge_scope
from cra.pipeline.context.symbols import ContextError, Symbol


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


def _signature_parts(symbol: Symbol) -> tuple[str, list[str]]:
    """(return type, parameter types) as normalised text, from `ret name(type a, type b)`."""
    head, _, params = symbol.signature.partition("(")
    ret = " ".join(head.replace(symbol.name, " ").split())
    types = []
    for param in params.rsplit(")", 1)[0].split(","):
        words = param.replace("*", " * ").split()
        if len(words) > 1 and words[-1] != "*":
            words = words[:-1]  # drop the parameter's name
        types.append(" ".join(words))
    return ret, types


def _doc_words(index: WorkspaceIndex, symbol: Symbol) -> set[str]:
    docs = [symbol.doc] + [d.doc for d in index.definitions(symbol.name) if d.doc]
    return {w.lower() for w in " ".join(docs).replace("@", " ").split() if len(w) > 2 and w.isalpha()}


def _exemplars(index: WorkspaceIndex, target: Symbol, limit: int, taken: set[tuple[str, int]]) -> list[PackEntry]:
    """Finished functions of the target's file most like it: same return and parameter types, similar contract."""
    entry = index.files.get(target.file)
    if limit <= 0 or entry is None:
        return []
    ret, params = _signature_parts(target)
    words = _doc_words(index, target)

    def score(s: Symbol) -> float:
        s_ret, s_params = _signature_parts(s)
        shared = sum(min(params.count(t), s_params.count(t)) for t in set(params))
        other = _doc_words(index, s)
        similarity = len(words & other) / max(1, len(words | other))
        return 2.0 * (s_ret == ret) + shared + 3.0 * similarity

    found = [s for s in entry.symbols
             if s.kind == k.FUNCTION and not s.is_stub and s.name != target.name and s.key not in taken
             and s.end_line - s.start_line <= 40]
    scored = sorted(((score(s), s) for s in found), key=lambda p: (-p[0], p[1].end_byte - p[1].start_byte))
    return [PackEntry(symbol=s, tier="seed", precision=PRIMARY, priority=(1, 0, -50.0, 0, s.file, s.start_byte),
                      text=_with_contract(index, s), bucket=1, evidence=50.0)
            for value, s in scored[:limit] if value >= 1.0]


def _with_contract(index: WorkspaceIndex, symbol: Symbol) -> str:
    """A definition with its doc comment, taken from the header prototype when the definition has none."""
    doc = symbol.doc or next((d.doc for d in index.definitions(symbol.name) if d.doc), "")
    return f"{doc}\n{symbol.text.rstrip()}" if doc else render(symbol, PRIMARY)


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
    include_target: bool = True,
    exemplars: int = 0,
) -> ContextPack:
    """`include_target=False` leaves the target (and its header prototype) out: a stage that shows the target
    itself, like implement, should not pay for it twice. `exemplars` adds up to N finished functions of the target's
    file that take the same types: the house style and invariants a new body must follow."""
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
    shown = _exemplars(index, target, exemplars, {e.symbol.key for e in entries if e.precision == PRIMARY})
    if shown:  # an exemplar's full text makes its prototype redundant
        names = {e.symbol.name for e in shown}
        entries = [e for e in entries if not (e.symbol.kind == k.PROTOTYPE and e.symbol.name in names)] + shown
    if not include_target:
        entries = [e for e in entries if e.symbol.name != target.name or e.symbol.kind in k.TYPE_KINDS]
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
