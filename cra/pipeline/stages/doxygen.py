"""Deterministic rendering of Doxygen comment blocks from structured fields (A3 contracts, A9 documentation)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

WIDTH = 100


def clean(text: str) -> str:
    """One line of comment text: no comment terminators, no control characters, collapsed whitespace."""
    text = text.replace("*/", "* /").replace("/*", "/ *")
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def render_block(*, brief: str, params: Sequence[tuple[str, str]] = (), returns: str = "", notes: str = "",
                 file: str | None = None, indent: str = "") -> str:
    """A `/** ... */` block, one tag per paragraph, wrapped at WIDTH columns. Ends without a newline."""
    lines: list[str] = []

    def add(tag: str, text: str) -> None:
        first = f"{tag} " if tag else ""
        body = clean(text)
        wrapped = textwrap.wrap(first + body, width=WIDTH - len(indent) - 3, subsequent_indent="  " if tag else "")
        lines.extend(wrapped or [first.rstrip()])

    if file is not None:
        add("@file", file)
    add("@brief", brief or "(no description)")
    for name, description in params:
        add(f"@param {name}", description or "(no description)")
    if returns.strip():
        add("@return", returns)
    if notes.strip():
        add("@note", notes)
    out = [f"{indent}/**"] + [f"{indent} * {line}".rstrip() for line in lines] + [f"{indent} */"]
    return "\n".join(out)


def words_of(identifier: str) -> list[str]:
    """`point_getX` → ["point", "get", "x"]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", identifier).replace("_", " ")
    return [w.lower() for w in spaced.split() if w]
