"""Render a symbol at a precision level: primary = full text, supporting = signature + doc comment,
type_context = the type definition only."""

from __future__ import annotations

import re

from cra.pipeline.context import symbols as k
from cra.pipeline.context.precision import PRIMARY, SUPPORTING, TYPE_CONTEXT
from cra.pipeline.context.symbols import Symbol

# A macro's signature (`#define NAME`) says nothing without its value; short macros render whole at every level.
_SHORT_MACRO_LINES = 6


def _declaration(symbol: Symbol) -> str:
    if symbol.kind in (k.MACRO, k.MACRO_FUNCTION):
        if symbol.end_line - symbol.start_line < _SHORT_MACRO_LINES:
            return symbol.text.rstrip()
        return symbol.signature
    if symbol.kind in k.TYPE_KINDS:
        return _definition(symbol)
    if symbol.kind == k.ENUMERATOR:
        return symbol.signature
    return symbol.signature.rstrip(";") + ";"


_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def _without_comments(text: str) -> str:
    """Type definitions at type_context drop comment-only lines (commentary about the type) but keep a member's
    trailing comment: `size_t tail; /**< index of the oldest byte */` is the member's contract, often its only one.
    Runs of blank lines shrink to one."""
    if "/" not in text or '"' in text or "'" in text:  # quotes could hide comment markers: keep the text as is
        return text
    kept: list[str] = []
    for original, stripped in zip(text.split("\n"), _COMMENT.sub(_same_lines, text).split("\n"), strict=True):
        line = stripped.rstrip()
        if not line and original.strip():
            continue  # a comment-only line
        if not line and kept and not kept[-1]:
            continue
        kept.append(original.rstrip() if line and _COMMENT.search(original) and original.strip() != line.strip()
                    and _balanced(original) else line)
    return "\n".join(kept)


def _balanced(line: str) -> bool:
    """A line whose comments open and close on it (a trailing member comment), not part of a block comment."""
    return line.count("/*") == line.count("*/")


def _same_lines(match: re.Match[str]) -> str:
    """A removed comment keeps its newlines, so lines still pair up with the original text."""
    return "\n" * match.group().count("\n")


def _definition(symbol: Symbol, *, bare: bool = False) -> str:
    text = _without_comments(symbol.text).rstrip() if bare else symbol.text.rstrip()
    if symbol.kind in (k.STRUCT, k.UNION, k.ENUM) and not text.endswith(";"):
        text += ";"
    return text


def render(symbol: Symbol, level: str) -> str:
    if level == PRIMARY:
        body = symbol.text.rstrip()
        return f"{symbol.doc}\n{body}" if symbol.doc else body
    if level == SUPPORTING:
        declaration = _declaration(symbol)
        return f"{symbol.doc}\n{declaration}" if symbol.doc else declaration
    if level == TYPE_CONTEXT:
        return _definition(symbol, bare=True) if symbol.kind in k.TYPE_KINDS else _declaration(symbol)
    raise ValueError(f"unknown precision level {level!r}")
