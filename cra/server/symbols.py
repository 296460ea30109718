"""Which function is at a line, and is its body a stub: a view of the pipeline's one C parser (`parse_source`).

Code actions must answer in well under 50 ms, so this reads a `FileIndex` the server already holds (from the
workspace index's incremental update, or one `parse_source` per document version) and never calls a model.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from cra.pipeline.context import FileIndex

# The C parser (tree-sitter) is imported on first use: the server answers `initialize` before loading it.
DEFINITION = "function"
PROTOTYPE = "prototype"


class FunctionSite(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str  # DEFINITION | PROTOTYPE
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, inclusive
    is_stub: bool  # definitions only: the body holds no real statement
    text: str  # the whole definition or prototype
    doc: str = ""  # the comment block directly above, "" when none
    signature: str = ""
    is_static: bool = False

    @property
    def content_hash(self) -> str:
        """Identity of the function's text: a generated doc stays valid while this is unchanged."""
        return hashlib.sha256(self.text.encode("utf-8", errors="surrogateescape")).hexdigest()[:32]


def sites_of(index: FileIndex) -> list[FunctionSite]:
    """Every function definition and prototype of an indexed file, in file order."""
    from cra.pipeline.context.symbols import FUNCTION
    from cra.pipeline.context.symbols import PROTOTYPE as INDEX_PROTOTYPE

    sites: list[FunctionSite] = []
    for symbol in index.symbols:
        if symbol.kind not in (FUNCTION, INDEX_PROTOTYPE):
            continue
        words = symbol.signature.replace("(", " ").split()
        sites.append(FunctionSite(
            name=symbol.name, kind=DEFINITION if symbol.kind == FUNCTION else PROTOTYPE,
            start_line=symbol.start_line, end_line=symbol.end_line,
            is_stub=symbol.kind == FUNCTION and symbol.is_stub, text=symbol.text, doc=symbol.doc,
            signature=symbol.signature, is_static="static" in words[: words.index(symbol.name)]
            if symbol.name in words else "static" in words))
    sites.sort(key=lambda s: s.start_line)
    return sites


def functions_in(source: bytes, path: str = "document.c") -> list[FunctionSite]:
    """Every top-level function definition and prototype in C source bytes, in file order."""
    from cra.pipeline.context.cparse import parse_definitions  # no reference pass: tree-sitter only, no numpy

    return sites_of(parse_definitions(path, source))


def function_at(sites: list[FunctionSite], line: int) -> FunctionSite | None:
    """The function whose text spans `line` (0-based); definitions win over prototypes."""
    hits = [s for s in sites if s.start_line <= line <= s.end_line]
    hits.sort(key=lambda s: s.kind != DEFINITION)
    return hits[0] if hits else None


def find_function(sites: list[FunctionSite], name: str) -> FunctionSite | None:
    """The definition of `name`, or its prototype when there is no definition."""
    matches = [s for s in sites if s.name == name]
    matches.sort(key=lambda s: s.kind != DEFINITION)
    return matches[0] if matches else None
