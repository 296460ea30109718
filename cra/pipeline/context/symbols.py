"""Data crossing the context package boundary: symbols, references, includes, per-file and workspace results."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, overload

import msgspec

if TYPE_CHECKING:
    import numpy as np

# numpy is imported by the methods that read the reference columns: a caller that only needs the symbols (the
# language server's code actions) does not wait for its import.

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
REF_KINDS = (REF_CALL, REF_IDENT, REF_TYPE)  # References.kinds holds indices into this tuple


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


class References(msgspec.Struct, dict=True):
    """A file's references, sorted by start_byte, stored as columns: a large file has ~10^5 of them, and one
    `Reference` object each would dominate indexing, transfer between processes and the cache. Reads as a
    sequence of `Reference` (built on first use); hot loops over whole workspaces use the columns.

    Canonical: equal references give equal columns (owner_names in order of first use)."""

    names: str = ""  # every name followed by "\n" (names never hold one)
    offsets: bytes = b""  # int32 per reference: where its name starts in `names`
    kinds: bytes = b""  # uint8 per reference: index into REF_KINDS
    lines: bytes = b""  # int32 per reference
    columns: bytes = b""  # int32 per reference
    starts: bytes = b""  # int32 per reference: start_byte, ascending
    owners: bytes = b""  # int32 per reference: index into owner_names, -1 at file scope
    owner_names: list[str] = []

    @classmethod
    def from_columns(
        cls,
        names: str,
        offsets: np.ndarray,
        kinds: np.ndarray,
        lines: np.ndarray,
        columns: np.ndarray,
        starts: np.ndarray,
        owners: np.ndarray,
        owner_names: list[str],
    ) -> References:
        """From arrays; `owners` index `owner_names` (-1: none) in any order and are renumbered canonically."""
        import numpy as np

        owners, owner_names = _canonical_owners(np.asarray(owners, dtype=np.int32), owner_names)
        return cls(
            names,
            np.asarray(offsets, dtype=np.int32).tobytes(),
            np.asarray(kinds, dtype=np.uint8).tobytes(),
            np.asarray(lines, dtype=np.int32).tobytes(),
            np.asarray(columns, dtype=np.int32).tobytes(),
            np.asarray(starts, dtype=np.int32).tobytes(),
            owners.tobytes(),
            owner_names,
        )

    def __len__(self) -> int:
        return len(self.kinds)

    def column(self, name: str) -> np.ndarray:
        """A numeric column ("offsets", "lines", "columns", "starts", "owners") as a read-only int32 array."""
        import numpy as np

        return np.frombuffer(getattr(self, name), dtype=np.int32)

    def kind_codes(self) -> np.ndarray:
        import numpy as np

        return np.frombuffer(self.kinds, dtype=np.uint8)

    def name_list(self, lo: int = 0, hi: int | None = None) -> list[str]:
        """Names of references lo..hi (positions, not bytes)."""
        hi = len(self) if hi is None else hi
        if lo >= hi:
            return []
        offsets = self.column("offsets")
        end = int(offsets[hi]) if hi < len(offsets) else len(self.names)
        return self.names[int(offsets[lo]) : end].split("\n")[:-1]

    def owner_list(self, lo: int = 0, hi: int | None = None) -> list[str]:
        """Enclosing symbol names ("" at file scope) of references lo..hi."""
        table = [*self.owner_names, ""]  # index -1: file scope
        return [table[i] for i in self.column("owners")[lo:hi].tolist()]

    def between(self, start_byte: int, end_byte: int) -> list[Reference]:
        """References starting in [start_byte, end_byte)."""
        import numpy as np

        starts = self.column("starts")
        lo, hi = np.searchsorted(starts, [start_byte, end_byte]).tolist()
        return self._build(lo, hi)

    def _build(self, lo: int, hi: int) -> list[Reference]:
        import numpy as np

        if lo >= hi:
            return []
        kinds = np.array(REF_KINDS, dtype=object)[self.kind_codes()[lo:hi]].tolist()
        return list(
            map(
                Reference,
                self.name_list(lo, hi),
                kinds,
                self.column("lines")[lo:hi].tolist(),
                self.column("columns")[lo:hi].tolist(),
                self.column("starts")[lo:hi].tolist(),
                self.owner_list(lo, hi),
            )
        )

    def as_list(self) -> list[Reference]:
        """All references as objects, built once."""
        built = self.__dict__.get("_built")
        if built is None:
            built = self.__dict__["_built"] = self._build(0, len(self))
        return built

    def __iter__(self) -> Iterator[Reference]:
        return iter(self.as_list())

    @overload
    def __getitem__(self, index: int) -> Reference: ...
    @overload
    def __getitem__(self, index: slice) -> list[Reference]: ...
    def __getitem__(self, index: int | slice) -> Reference | list[Reference]:
        return self.as_list()[index]


def _canonical_owners(owners: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Owner indices renumbered by first use, with the table trimmed to the names used."""
    import numpy as np

    used = owners[owners >= 0]
    if not len(used):
        return np.full(len(owners), -1, dtype=np.int32), []
    distinct, first = np.unique(used, return_index=True)
    by_first_use = distinct[np.argsort(first)]
    renumber = np.full(len(names), -1, dtype=np.int32)
    # One name may sit at several indices (merged tables): all of them map to that name's first-use slot.
    slot: dict[str, int] = {}
    for index in by_first_use.tolist():
        renumber[index] = slot.setdefault(names[index], len(slot))
    result = np.where(owners >= 0, renumber[np.maximum(owners, 0)], -1).astype(np.int32)
    return result, list(slot)


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
    references: References
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
    processes: int = 1  # processes that parsed, this one included
    skipped: list[SkippedFile] = []
    seconds: float = 0.0


class ContextError(Exception):
    """A context request that cannot be served (unknown file or symbol, budget too small, bad workspace)."""
