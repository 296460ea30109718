"""Context for C: tree-sitter-c index, retrieval tiers, scope judgment, precision cascade, token-budget packing."""

from cra.pipeline.context.assemble import ContextPack, assemble
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
    "assemble",
    "engine_judge",
    "estimate_tokens",
    "parse_source",
]
