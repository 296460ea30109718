"""Data crossing the context package boundary: symbols, references, includes, per-file and workspace results."""

from __future__ import annotations

import msgspec

# Symbol kinds produced by the C indexer.
FUNCTION = "function"
PROTOTYPE = "prototype"
STRUCT = "struct"
UNION = "union"
ENUM = "enum"
ENUMERATOR = "enumerator"
TYPEDEF = "typedef"
MACRO = "macro"
MACRO_FUNCTION = "macro_function"
VARIABLE = "variable"

TYPE_KINDS = frozenset({STRUCT, UNION, ENUM, TYPEDEF})
CALLABLE_KINDS = frozenset({FUNCTION, PROTOTYPE, MACRO_FUNCTION})

# Reference kinds: a call `f(...)`, a type name use, any other identifier use (macro, global, enumerator).
REF_CALL = "call"
REF_TYPE = "type"
REF_IDENT = "ident"


class Symbol(msgspec.Struct, frozen=True):
    name: str
    kind: str
    file: str  # workspace-relative path, '/'-separated
    start_byte: int
    end_byte: int
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, inclusive
    name_byte: int  # byte offset of the name token (lets references skip the defining occurrence)
    signature: str
    doc: str  # the comment block immediately above, "" when none
    text: str  # full definition text (decoded with errors="replace"; byte ranges stay exact)
    body_start_byte: int = -1  # functions: the `{ ... }` body; -1 otherwise
    body_end_byte: int = -1
    body_empty: bool = False  # function body holds no statements (comments allowed)
    is_stub: bool = False  # empty or placeholder-only: `return 0;`/`NULL`/`-1`/`false`, `return;`, abort(), assert(0)
    parent: str = ""  # enumerators: the enum (or typedef) they belong to

    @property
    def key(self) -> tuple[str, int]:
        return (self.file, self.start_byte)


class Reference(msgspec.Struct, frozen=True, array_like=True):
    name: str
    kind: str  # REF_CALL | REF_TYPE | REF_IDENT
    line: int  # 0-based
    column: int  # byte column
    start_byte: int
    enclosing: str  # name of the enclosing top-level symbol, "" at file scope


class Include(msgspec.Struct, frozen=True):
    target: str  # as written between the quotes / angle brackets
    system: bool  # `<...>` rather than `"..."`
    line: int
    resolved: str | None = None  # workspace-relative path once resolved, None when outside the workspace


class FileIndex(msgspec.Struct):
    path: str
    sha256: str
    size: int
    symbols: list[Symbol]
    references: list[Reference]
    includes: list[Include]
    error_lines: list[int] = []  # 0-based lines of ERROR/MISSING nodes: indexed around, reported here


class SkippedFile(msgspec.Struct, frozen=True):
    path: str
    reason: str


class IndexStats(msgspec.Struct):
    files: int = 0
    symbols: int = 0
    references: int = 0
    bytes: int = 0
    parsed: int = 0  # files parsed this run
    cached: int = 0  # files loaded from the persisted cache without parsing
    skipped: list[SkippedFile] = []
    seconds: float = 0.0


class ContextError(Exception):
    """A context request that cannot be served (unknown file or symbol, budget too small, bad workspace)."""
