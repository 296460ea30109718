"""Token-budget packing: whole symbols by priority until the budget is full, rendered in a stable file/position
order so the same selection always gives byte-identical text (the engine reuses its KV across stages)."""

from __future__ import annotations

import math
from collections.abc import Callable

import msgspec

from cra.pipeline.context.symbols import ContextError, Symbol

CountTokens = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """Byte-based estimate for when no model tokenizer is supplied: code runs ~3 bytes per BPE token."""
    return (len(text.encode("utf-8")) + 2) // 3


class ContextItem(msgspec.Struct):
    name: str
    kind: str
    file: str
    tier: str
    precision: str
    tokens: int
    text: str
    line: int = 0  # 0-based first line of the symbol in its file


class PackEntry(msgspec.Struct):
    symbol: Symbol
    tier: str
    precision: str
    priority: tuple
    text: str
    tokens: int = 0
    required: bool = False
    bucket: int = 0  # 0 target, 1 direct dependency, 2 the rest
    evidence: float = 0.0  # how strongly retrieval features point at this symbol


def _value_order(entry: PackEntry) -> tuple:
    """Within a bucket, evidence per token (damped): one huge enum must not crowd out ten needed helpers."""
    return (not entry.required, entry.bucket, -entry.evidence / math.sqrt(max(entry.tokens, 16)), entry.priority)


def file_header(path: str) -> str:
    return f"// file: {path}\n"


def render(entries: list[PackEntry]) -> str:
    ordered = sorted(entries, key=lambda e: (e.symbol.file, e.symbol.start_byte, e.symbol.name_byte))
    parts: list[str] = []
    current = None
    for entry in ordered:
        if entry.symbol.file != current:
            if parts:
                parts.append("\n")
            parts.append(file_header(entry.symbol.file))
            current = entry.symbol.file
        parts.append(entry.text + "\n\n")
    return "".join(parts).rstrip("\n") + "\n" if parts else ""


def pack(
    entries: list[PackEntry], budget: int, count_tokens: CountTokens
) -> tuple[list[PackEntry], list[PackEntry], str, int]:
    """(kept, dropped, rendered, tokens). Required entries (the target) are always kept; a symbol is never split."""
    if budget <= 0:
        raise ContextError(f"token budget must be positive, got {budget}")
    for entry in entries:
        entry.tokens = count_tokens(entry.text + "\n\n")
    ordered = sorted(entries, key=_value_order)
    kept: list[PackEntry] = []
    dropped: list[PackEntry] = []
    files: set[str] = set()
    used = 0
    for entry in ordered:
        header = 0 if entry.symbol.file in files else count_tokens("\n" + file_header(entry.symbol.file))
        cost = entry.tokens + header
        if entry.required or used + cost <= budget:
            kept.append(entry)
            files.add(entry.symbol.file)
            used += cost
        else:
            dropped.append(entry)
    rendered = render(kept)
    tokens = count_tokens(rendered)
    # Tokens of a concatenation can differ slightly from the sum of the parts: drop the lowest-priority extras.
    while tokens > budget and any(not e.required for e in kept):
        victim = max((e for e in kept if not e.required), key=_value_order)
        kept.remove(victim)
        dropped.append(victim)
        rendered = render(kept)
        tokens = count_tokens(rendered)
    if tokens > budget:
        raise ContextError(
            f"the target alone needs {tokens} tokens, more than the budget of {budget}; raise the budget"
        )
    return kept, dropped, rendered, tokens
