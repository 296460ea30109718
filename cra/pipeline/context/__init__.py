"""Context for C: tree-sitter-c index, retrieval tiers, scope judgment, precision cascade, token-budget packing.

Importing the package loads nothing: each name is imported from its submodule on first use (PEP 562), so that a
caller that needs only the parser (`parse_source`: tree-sitter) does not pay for the index, retrieval and the
stages, and the language server can answer its first requests while they load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cra.lazy import lazy_exports

if TYPE_CHECKING:
    from cra.pipeline.context.assemble import ContextPack
    from cra.pipeline.context.cparse import parse_source
    from cra.pipeline.context.index import WorkspaceIndex
    from cra.pipeline.context.judge import Judge, JudgeError, engine_judge
    from cra.pipeline.context.packing import ContextItem, estimate_tokens
    from cra.pipeline.context.symbols import (
        ContextError,
        FileIndex,
        Include,
        IndexStats,
        Reference,
        SkippedFile,
        Symbol,
    )

# name → submodule it is imported from on first access. The function `assemble` is not among them: importing the
# submodule of the same name binds the package attribute to the module, so import it from `.assemble` itself.
_LAZY = {
    "ContextPack": ".assemble",
    "parse_source": ".cparse",
    "WorkspaceIndex": ".index",
    "Judge": ".judge",
    "JudgeError": ".judge",
    "engine_judge": ".judge",
    "ContextItem": ".packing",
    "estimate_tokens": ".packing",
    "ContextError": ".symbols",
    "FileIndex": ".symbols",
    "Include": ".symbols",
    "IndexStats": ".symbols",
    "Reference": ".symbols",
    "SkippedFile": ".symbols",
    "Symbol": ".symbols",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "ContextError",
    "ContextItem",
    "ContextPack",
    "FileIndex",
    "Include",
    "IndexStats",
    "Judge",
    "JudgeError",
    "Reference",
    "SkippedFile",
    "Symbol",
    "WorkspaceIndex",
    "engine_judge",
    "estimate_tokens",
    "parse_source",
]
