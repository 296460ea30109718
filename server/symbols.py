"""A minimal function locator over tree-sitter-c: which function is at a line, and is its body a stub.

Kept tiny on purpose: code actions must answer in well under 50 ms without touching the pipeline's index.
"""

from __future__ import annotations

import re
from functools import lru_cache

import msgspec
import tree_sitter_c
from tree_sitter import Language, Node, Parser

DEFINITION = "function"
PROTOTYPE = "prototype"

# A body whose statements are all of these is a placeholder waiting for an implementation.
_STUB_STATEMENT = re.compile(
    r"^(return\s*(0|NULL|false|-1|0\.0|'\\0')?\s*;|abort\s*\(\s*\)\s*;|assert\s*\(\s*(0|false)\s*\)\s*;|;)$"
)


class FunctionSite(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str  # DEFINITION | PROTOTYPE
    start_line: int  # 0-based, inclusive
    end_line: int  # 0-based, inclusive
    is_stub: bool  # definitions only: the body holds no real statement
    text: str  # the whole definition or prototype


@lru_cache(maxsize=1)
def _parser() -> Parser:
    return Parser(Language(tree_sitter_c.language()))


def _function_declarator(node: Node | None) -> Node | None:
    """Descend through pointer/parenthesized declarators to the function declarator, if any."""
    while node is not None:
        if node.type == "function_declarator":
            return node
        if node.type in ("pointer_declarator", "parenthesized_declarator", "attributed_declarator"):
            node = node.child_by_field_name("declarator") or (node.named_children[0] if node.named_children else None)
            continue
        return None
    return None


def _declarator_name(declarator: Node) -> str | None:
    inner = declarator.child_by_field_name("declarator")
    while inner is not None and inner.type != "identifier":
        inner = inner.child_by_field_name("declarator")
    return inner.text.decode("utf-8", "replace") if inner is not None and inner.text is not None else None


def _is_stub(body: Node) -> bool:
    for child in body.named_children:
        if child.type == "comment":
            continue
        text = (child.text or b"").decode("utf-8", "replace")
        if not _STUB_STATEMENT.match(" ".join(text.split())):
            return False
    return True


def functions_in(source: bytes) -> list[FunctionSite]:
    """Every top-level function definition and prototype in a C file, in file order."""
    tree = _parser().parse(source)
    sites: list[FunctionSite] = []
    for node in tree.root_node.named_children:
        if node.type == "function_definition":
            declarator = _function_declarator(node.child_by_field_name("declarator"))
            body = node.child_by_field_name("body")
            kind, stub = DEFINITION, body is not None and _is_stub(body)
        elif node.type == "declaration":
            declarator = next(
                (d for d in map(_function_declarator, node.children_by_field_name("declarator")) if d), None
            )
            kind, stub = PROTOTYPE, False
        else:
            continue
        name = _declarator_name(declarator) if declarator is not None else None
        if name:
            sites.append(FunctionSite(
                name=name, kind=kind, start_line=node.start_point[0], end_line=node.end_point[0],
                is_stub=stub, text=(node.text or b"").decode("utf-8", "replace"),
            ))
    return sites


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
