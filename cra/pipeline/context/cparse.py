"""Parse one C/H file with tree-sitter-c into a `FileIndex`: definitions, references, includes.

Definitions come from a Python walk over top-level nodes only (a few hundred per file); references come from one
tree-sitter Query over the whole tree, so no Python code runs per expression node.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import tree_sitter
import tree_sitter_c

from cra.pipeline.context import symbols as k
from cra.pipeline.context.symbols import FileIndex, Include, References, Symbol

if TYPE_CHECKING:
    import numpy as np

# numpy is imported by the reference pass only (`_references`): `parse_definitions`, all the language server needs
# for its code actions, runs on tree-sitter alone and does not wait for numpy's import.

LANGUAGE = tree_sitter.Language(tree_sitter_c.language())

# Containers whose children are top-level code: both `#ifdef` branches are indexed.
_TRANSPARENT = frozenset(
    {
        "preproc_if",
        "preproc_ifdef",
        "preproc_else",
        "preproc_elif",
        "preproc_elifdef",
        "linkage_specification",
        "declaration_list",
    }
)
_TYPE_SPECIFIERS = {"struct_specifier": k.STRUCT, "union_specifier": k.UNION, "enum_specifier": k.ENUM}
_DEFINITION_NODES = frozenset(
    {"function_definition", "declaration", "type_definition", "preproc_def", "preproc_function_def"}
    | {"struct_specifier", "union_specifier", "enum_specifier"}
)
_NULLISH = frozenset({"0", "NULL", "nullptr", "false", "-1", "0.0", "0.0f", "0u", "'\\0'", "((void*)0)", "((void *)0)",
                      "(void*)0", "(void *)0"})
_STUB_CALLS = frozenset({"abort", "assert", "__builtin_unreachable", "__builtin_trap"})
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")

_REFERENCE_QUERY = """
(call_expression function: (identifier) @call)
(type_identifier) @type
(identifier) @ident
(preproc_arg) @macro_body
(ERROR) @error
"""

# Export/attribute macros in front of declarations (`GGML_API struct t * f(void);`) derail tree-sitter, which knows
# no macros. They are blanked with spaces before parsing: byte offsets stay exact and text fields keep the macro.
_DECL_MACRO = re.compile(
    rb"(?<![#\w])(?<!define )\b[A-Z][A-Z0-9_]*(?:_API|_EXPORT|_CALL|_INLINE|_PUBLIC|_EXTERN|_DEPRECATED_API)\b"
    rb"(?=[ \t*]+[A-Za-z_])"
)
_MACRO_SUFFIX = re.compile(rb"_(?:API|EXPORT|CALL|INLINE|PUBLIC|EXTERN)\b")
_WORD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while "
    "_Bool bool".split()
)


def mask_declaration_macros(data: bytes) -> bytes:
    """`data` with export/attribute macros in declaration position replaced by spaces of the same length."""
    if b"_API" not in data and b"_EXPORT" not in data and b"_CALL" not in data and b"_INLINE" not in data \
            and b"_PUBLIC" not in data and b"_EXTERN" not in data:
        return data
    # Every match is a whole word ending in one of the suffixes: find those word ends (a literal-led search, far
    # cheaper than trying the lookbehinds at every byte), then match the full pattern from the word's start.
    masked: bytearray | None = None
    for hit in _MACRO_SUFFIX.finditer(data):
        start = hit.start()
        while start > 0 and data[start - 1] in _WORD_BYTES:
            start -= 1
        match = _DECL_MACRO.match(data, start)
        if match is not None:
            if masked is None:
                masked = bytearray(data)
            masked[match.start() : match.end()] = b" " * (match.end() - match.start())
    return data if masked is None else bytes(masked)


_parser_cache: list[tree_sitter.Parser] = []
_query_cache: list[tree_sitter.Query] = []


def parser() -> tree_sitter.Parser:
    if not _parser_cache:
        _parser_cache.append(tree_sitter.Parser(LANGUAGE))
    return _parser_cache[0]


def query() -> tree_sitter.Query:
    if not _query_cache:
        _query_cache.append(tree_sitter.Query(LANGUAGE, _REFERENCE_QUERY))
    return _query_cache[0]


def captures(node: tree_sitter.Node, lo: int = 0, hi: int | None = None) -> dict[str, list[tree_sitter.Node]]:
    """Query captures across py-tree-sitter 0.23 (Query.captures) and ≥0.24 (QueryCursor); with a byte range,
    nodes intersecting it (callers filter to the nodes starting inside)."""
    query_ = query()
    cursor_type = getattr(tree_sitter, "QueryCursor", None)
    if cursor_type is not None:
        cursor = cursor_type(query_)
        if hi is not None:
            cursor.set_byte_range(lo, hi)
        return cursor.captures(node)
    return query_.captures(node)  # type: ignore[attr-defined]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_source(path: str, data: bytes) -> FileIndex:
    """Index `data` (the bytes of the file at workspace-relative `path`)."""
    masked = mask_declaration_macros(data)
    tree = parser().parse(masked)
    return extract(path, data, tree, masked)


def extract(path: str, data: bytes, tree: tree_sitter.Tree, masked: bytes | None = None) -> FileIndex:
    builder = _Builder(path, data, masked if masked is not None else data)
    builder.walk(tree.root_node.children)
    return builder.finish(tree.root_node)


def parse_definitions(path: str, data: bytes) -> FileIndex:
    """The definitions, prototypes and includes of `data`, as `parse_source` finds them, without the reference
    pass: `references` and `error_lines` are left empty. For callers that only ask which function is where."""
    masked = mask_declaration_macros(data)
    builder = _Builder(path, data, masked)
    builder.walk(parser().parse(masked).root_node.children)
    builder.symbols.sort(key=lambda s: (s.start_byte, s.name_byte))
    return FileIndex(path=path, sha256=sha256(data), size=len(data), symbols=builder.symbols,
                     references=References(), includes=builder.includes, error_lines=[])


def _text(data: bytes, start: int, end: int) -> str:
    return data[start:end].decode("utf-8", errors="replace")


def _collapse(text: str) -> str:
    return " ".join(text.split())  # str.split() and regex \s agree on whitespace; split is several times faster


def _declarator_name(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    """The identifier a declarator declares, through pointers, parentheses, arrays and function declarators."""
    while node is not None:
        if node.type in ("identifier", "type_identifier", "field_identifier"):
            return node
        inner = node.child_by_field_name("declarator")
        if inner is None:
            named = [c for c in node.named_children if c.type not in ("comment", "ERROR")]
            inner = named[0] if named else None
        node = inner
    return None


def _is_prototype(declarator: tree_sitter.Node) -> bool:
    """`int *f(void)` declares a function; `int (*f)(void)` declares a function-pointer variable."""
    node: tree_sitter.Node | None = declarator
    while node is not None and node.type in ("pointer_declarator", "attributed_declarator"):
        node = node.child_by_field_name("declarator")
    if node is None or node.type != "function_declarator":
        return False
    inner = node.child_by_field_name("declarator")
    return inner is not None and inner.type == "identifier"


class _Builder:
    def __init__(self, path: str, data: bytes, masked: bytes) -> None:
        self.path = path
        self.data = data
        self.masked = masked
        self.symbols: list[Symbol] = []
        self.includes: list[Include] = []
        # (start_byte, end_byte, name) of each top-level definition node: resolves a reference's enclosing symbol.
        self.spans: list[tuple[int, int, str]] = []

    # -- definitions -------------------------------------------------------------------------------------------
    def walk(self, children: Iterable[tree_sitter.Node], lo: int = 0, hi: int | None = None) -> None:
        """Index the definitions among `children`; with a byte range, only units starting inside it (an
        incremental update re-extracts just the edited region)."""
        siblings = list(children)
        for index, node in enumerate(siblings):
            kind = node.type
            if hi is not None and (node.end_byte <= lo or node.start_byte >= hi):
                continue
            if kind in _TRANSPARENT:
                self.walk(node.children, lo, hi)
            elif hi is not None and node.start_byte < lo:
                continue
            elif kind == "ERROR":
                self._walk_error(node)
            elif kind == "preproc_include":
                self._include(node)
            elif kind in _DEFINITION_NODES:
                self._definition(node, self._doc(siblings, index))

    def _walk_error(self, node: tree_sitter.Node) -> None:
        """Broken code: keep whatever whole definitions tree-sitter recovered inside the ERROR node."""
        children = list(node.children)
        for index, child in enumerate(children):
            kind = child.type
            if kind in _TRANSPARENT or kind in ("ERROR", "compound_statement"):
                self._walk_error(child)
            elif kind in ("function_definition", "type_definition", "preproc_def", "preproc_function_def"):
                self._definition(child, self._doc(children, index))
            elif kind in _TYPE_SPECIFIERS and child.child_by_field_name("body") is not None:
                self._definition(child, self._doc(children, index))
            elif kind == "preproc_include":
                self._include(child)

    def _doc(self, siblings: list[tree_sitter.Node], index: int) -> str:
        """The comment block directly above siblings[index] (no blank line between, each comment on its own line)."""
        node = siblings[index]
        row = node.start_point[0]
        parts: list[tree_sitter.Node] = []
        i = index - 1
        while i >= 0:
            prev = siblings[i]
            if prev.type != "comment" or prev.end_point[0] < row - 1:
                break
            before = siblings[i - 1] if i > 0 else None
            # Preprocessor lines end after their newline (column 0 of the next row): that is not the same line.
            before_row = before.end_point[0] - (1 if before is not None and before.end_point[1] == 0 else 0) if before else -1
            if before is not None and before_row == prev.start_point[0] and before.type != "comment":
                break  # a trailing comment of the previous line's code, not a doc comment
            parts.append(prev)
            row = prev.start_point[0]
            i -= 1
        if not parts:
            return ""
        return _text(self.data, parts[-1].start_byte, parts[0].end_byte)

    def _add(
        self,
        node: tree_sitter.Node,
        name_node: tree_sitter.Node,
        kind: str,
        signature: str,
        doc: str,
        **extra: object,
    ) -> Symbol:
        data = self.data
        name = _text(data, name_node.start_byte, name_node.end_byte)
        start = node.start_byte
        if self.masked is not data:
            # A blanked export macro right before the definition belongs to its text.
            line_start = data.rfind(b"\n", 0, start) + 1
            if line_start < start and not self.masked[line_start:start].strip() and data[line_start:start].strip():
                start = line_start + (len(data[line_start:start]) - len(data[line_start:start].lstrip()))
        symbol = Symbol(
            name=name,
            kind=kind,
            file=self.path,
            start_byte=start,
            end_byte=node.end_byte,
            start_line=node.start_point[0],
            end_line=node.end_point[0],
            name_byte=name_node.start_byte,
            signature=signature,
            doc=doc,
            text=_text(data, start, node.end_byte),
            **extra,  # type: ignore[arg-type]
        )
        if name not in _KEYWORDS:  # recovery from broken code can leave a keyword where a name belongs
            self.symbols.append(symbol)
        return symbol

    def _span(self, node: tree_sitter.Node, name: str) -> None:
        self.spans.append((node.start_byte, node.end_byte, name))

    def _signature_without_body(self, node: tree_sitter.Node, body: tree_sitter.Node | None) -> str:
        data = self.data
        if body is None:
            return _collapse(_text(data, node.start_byte, node.end_byte)).rstrip(";").rstrip()
        head = _text(data, node.start_byte, body.start_byte)
        tail = _text(data, body.end_byte, node.end_byte)
        return _collapse(f"{head}{{ ... }}{tail}").rstrip(";").rstrip()

    def _definition(self, node: tree_sitter.Node, doc: str) -> None:
        kind = node.type
        if kind == "function_definition":
            self._function(node, doc)
        elif kind == "declaration":
            self._declaration(node, doc)
        elif kind == "type_definition":
            self._typedef(node, doc)
        elif kind in _TYPE_SPECIFIERS:
            self._type_specifier(node, doc, typedef_name="")
        elif kind in ("preproc_def", "preproc_function_def"):
            self._macro(node, doc)

    def _function(self, node: tree_sitter.Node, doc: str) -> None:
        declarator = node.child_by_field_name("declarator")
        name_node = _declarator_name(declarator)
        body = node.child_by_field_name("body")
        if name_node is None or body is None:
            return
        empty, stub = self._stub(body)
        symbol = self._add(
            node,
            name_node,
            k.FUNCTION,
            _collapse(_text(self.data, node.start_byte, body.start_byte)),
            doc,
            body_start_byte=body.start_byte,
            body_end_byte=body.end_byte,
            body_empty=empty,
            is_stub=stub,
        )
        self._span(node, symbol.name)
        type_node = node.child_by_field_name("type")
        if type_node is not None and type_node.type in _TYPE_SPECIFIERS:
            self._type_specifier(type_node, "", typedef_name="", span=False)

    def _stub(self, body: tree_sitter.Node) -> tuple[bool, bool]:
        """(empty, stub). Comments (a TODO note) do not count as code; stub statements are placeholder returns,
        `(void)param;`, abort() and assert(0)."""
        statements = [c for c in body.named_children if c.type != "comment"]
        if not statements:
            return True, True
        if len(statements) > 3:
            return False, False
        for statement in statements:
            if not self._stub_statement(statement):
                return False, False
        return False, True

    def _stub_statement(self, node: tree_sitter.Node) -> bool:
        data = self.data
        if node.type == "return_statement":
            values = [c for c in node.named_children if c.type != "comment"]
            if not values:
                return True
            return "".join(_text(data, values[0].start_byte, values[0].end_byte).split()) in _NULLISH
        if node.type == "expression_statement":
            exprs = [c for c in node.named_children if c.type != "comment"]
            if not exprs:
                return True
            expr = exprs[0]
            if expr.type == "cast_expression":  # `(void)param;` silences unused-parameter warnings in stubs
                type_node = expr.child_by_field_name("type")
                return type_node is not None and _collapse(_text(data, type_node.start_byte, type_node.end_byte)) == "void"
            if expr.type == "call_expression":
                fn = expr.child_by_field_name("function")
                name = _text(data, fn.start_byte, fn.end_byte) if fn is not None else ""
                if name not in _STUB_CALLS:
                    return False
                if name != "assert":
                    return True
                args = expr.child_by_field_name("arguments")
                inner = "".join(_text(data, args.start_byte, args.end_byte).split()) if args is not None else ""
                return inner.startswith(("(0", "(false"))
        return False

    def _declaration(self, node: tree_sitter.Node, doc: str) -> None:
        data = self.data
        type_node = node.child_by_field_name("type")
        first_name = ""
        if type_node is not None and type_node.type in _TYPE_SPECIFIERS:
            first_name = self._type_specifier(type_node, doc, typedef_name="", span=False)
        prefix_end = type_node.end_byte if type_node is not None else node.start_byte
        body = type_node.child_by_field_name("body") if type_node is not None else None
        if body is not None:
            prefix = _collapse(
                _text(data, node.start_byte, body.start_byte) + "{ ... }" + _text(data, body.end_byte, prefix_end)
            )
        else:
            prefix = _collapse(_text(data, node.start_byte, prefix_end))
        for declarator in node.children_by_field_name("declarator"):
            target = declarator
            if declarator.type == "init_declarator":
                target = declarator.child_by_field_name("declarator") or declarator
            name_node = _declarator_name(target)
            if name_node is None:
                continue
            kind = k.PROTOTYPE if _is_prototype(target) else k.VARIABLE
            signature = f"{prefix} {_collapse(_text(data, target.start_byte, target.end_byte))}"
            symbol = self._add(node, name_node, kind, signature, doc)
            first_name = first_name or symbol.name
        if first_name:
            self._span(node, first_name)

    def _typedef(self, node: tree_sitter.Node, doc: str) -> None:
        type_node = node.child_by_field_name("type")
        declarators = node.children_by_field_name("declarator")
        names = [n for n in (_declarator_name(d) for d in declarators) if n is not None]
        typedef_name = _text(self.data, names[0].start_byte, names[0].end_byte) if names else ""
        body = type_node.child_by_field_name("body") if type_node is not None else None
        signature = self._signature_without_body(node, body)
        for name_node in names:
            self._add(node, name_node, k.TYPEDEF, signature, doc)
        if type_node is not None and type_node.type in _TYPE_SPECIFIERS:
            self._type_specifier(type_node, doc, typedef_name=typedef_name, span=False)
        if typedef_name:
            self._span(node, typedef_name)

    def _type_specifier(self, node: tree_sitter.Node, doc: str, *, typedef_name: str, span: bool = True) -> str:
        """A struct/union/enum with a body; returns its name ('' when anonymous and not typedef'd)."""
        body = node.child_by_field_name("body")
        if body is None:
            return ""
        kind = _TYPE_SPECIFIERS[node.type]
        name_node = node.child_by_field_name("name")
        parent = typedef_name
        if name_node is not None:
            symbol = self._add(node, name_node, kind, self._signature_without_body(node, body), doc)
            parent = symbol.name
            if span:
                self._span(node, symbol.name)
        if kind == k.ENUM:
            for enumerator in body.named_children:
                if enumerator.type != "enumerator":
                    continue
                enum_name = enumerator.child_by_field_name("name")
                if enum_name is not None:
                    self._add(
                        enumerator,
                        enum_name,
                        k.ENUMERATOR,
                        _collapse(_text(self.data, enumerator.start_byte, enumerator.end_byte)),
                        "",
                        parent=parent,
                    )
        return parent

    def _macro(self, node: tree_sitter.Node, doc: str) -> None:
        name_node = node.child_by_field_name("name")
        if name_node is None:
            return
        value = node.child_by_field_name("value")
        end = value.start_byte if value is not None else node.end_byte
        kind = k.MACRO_FUNCTION if node.type == "preproc_function_def" else k.MACRO
        symbol = self._add(node, name_node, kind, _collapse(_text(self.data, node.start_byte, end)), doc)
        self._span(node, symbol.name)

    def _include(self, node: tree_sitter.Node) -> None:
        path_node = node.child_by_field_name("path")
        if path_node is None:
            return
        raw = _text(self.data, path_node.start_byte, path_node.end_byte).strip()
        system = path_node.type == "system_lib_string"
        if len(raw) >= 2 and raw[0] in '"<' and raw[-1] in '">':
            raw = raw[1:-1]
        elif not system:
            return  # `#include MACRO`: not resolvable without running the preprocessor
        self.includes.append(Include(target=raw, system=system, line=node.start_point[0]))

    # -- references --------------------------------------------------------------------------------------------
    def finish(self, root: tree_sitter.Node, lo: int = 0, hi: int | None = None) -> FileIndex:
        """Collect references (of nodes starting in [lo, hi) when a range is given) and assemble the result."""
        data = self.data
        found = captures(root, lo, hi)
        defining = [s.name_byte for s in self.symbols]
        references = _references(data, found, sorted(self.spans), defining, lo, hi)
        errors = found.get("error", ())
        end = len(data) if hi is None else hi
        error_lines = sorted({n.start_point[0] for n in errors if hi is None or lo <= n.start_byte < end})
        self.symbols.sort(key=lambda s: (s.start_byte, s.name_byte))
        return FileIndex(
            path=self.path,
            sha256=sha256(data),
            size=len(data),
            symbols=self.symbols,
            references=references,
            includes=self.includes,
            error_lines=error_lines,
        )


# Where a reference comes from (0-3), and its kind as an index into k.REF_KINDS.
_IDENT_SOURCE, _MACRO_SOURCE, _TYPE_SOURCE = 1, 2, 3
_SOURCE_KINDS = [k.REF_KINDS.index(kind) for kind in (k.REF_CALL, k.REF_IDENT, k.REF_IDENT, k.REF_TYPE)]


def _starts_ends(nodes: list[tree_sitter.Node]) -> tuple[list[int], list[int]]:
    return [n.start_byte for n in nodes], [n.end_byte for n in nodes]


def _at_any(starts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For sorted `starts`: which equal one of the sorted, distinct `values` (a search per value, not per start)."""
    import numpy as np

    first = np.searchsorted(starts, values, "left")
    after = np.searchsorted(starts, values, "right")
    depth = np.bincount(first, minlength=len(starts) + 1) - np.bincount(after, minlength=len(starts) + 1)
    return np.cumsum(depth[:-1]) > 0


def _references(
    data: bytes,
    found: dict[str, list[tree_sitter.Node]],
    spans: list[tuple[int, int, str]],
    defining: list[int],
    lo: int,
    hi: int | None,
) -> References:
    """References from the query captures, computed as whole arrays (a large file has ~10^5): no Python object
    per reference."""
    import numpy as np

    end = len(data) if hi is None else hi
    call_s, call_e = _starts_ends(found.get("call", []))
    ident_s, ident_e = _starts_ends(found.get("ident", []))
    type_s, type_e = _starts_ends(found.get("type", []))
    # Macro bodies are opaque text to tree-sitter: their identifiers are the macro's dependencies.
    macro = [
        match.span()
        for node in found.get("macro_body", ())
        if hi is None or lo <= node.start_byte < end
        for match in _IDENT.finditer(data, node.start_byte, node.end_byte)
    ]
    # Sources in the order that breaks ties at one byte as (start, kind) tuples would: calls, identifiers,
    # macro-body identifiers, types.
    sources = np.repeat(np.arange(4, dtype=np.uint8), [len(call_s), len(ident_s), len(macro), len(type_s)])
    starts = np.array(call_s + ident_s + [m[0] for m in macro] + type_s, dtype=np.int64)
    ends = np.array(call_e + ident_e + [m[1] for m in macro] + type_e, dtype=np.int64)
    if hi is not None:
        inside = ((starts >= lo) & (starts < end)) | (sources == _MACRO_SOURCE)  # their macro started inside
        starts, ends, sources = starts[inside], ends[inside], sources[inside]
    # A stable sort by start (capture lists are not in document order); unique keys let a plain sort do it.
    count = len(starts)
    order = np.argsort(starts * count + np.arange(count))
    starts, ends, sources = starts[order], ends[order], sources[order]
    # The defining occurrence of a name is not a use of it; a called identifier is a call, not also an ident.
    skip = np.unique(np.array(defining + call_s, dtype=np.int64))
    if len(skip) and count:
        keep = ~(_at_any(starts, skip) & ((sources == _IDENT_SOURCE) | (sources == _TYPE_SOURCE)))
        starts, ends, sources = starts[keep], ends[keep], sources[keep]
    kinds = np.array(_SOURCE_KINDS, dtype=np.uint8)[sources]
    names, offsets = _names(data, starts, ends)
    rows, columns = _rows_columns(data, starts, lo, end)
    owners, owner_names = _owners(spans, starts)
    return References.from_columns(names, offsets, kinds, rows, columns, starts, owners, owner_names)


def _names(data: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[str, np.ndarray]:
    """The text of each [start, end) byte range, each followed by "\n", in one string; and where each begins."""
    import numpy as np

    lengths = ends - starts + 1
    offsets = np.cumsum(lengths) - lengths
    total = int(lengths.sum())
    # Source position of every output byte: a run start..end for each name, its last slot the separator.
    positions = np.arange(total, dtype=np.int64) - np.repeat(offsets - starts, lengths)
    blob = np.frombuffer(data + b"\n", dtype=np.uint8)[positions]  # a name ending the file reads one past it
    blob[offsets + lengths - 1] = 10
    raw = blob.tobytes()
    if raw.isascii():
        return raw.decode("ascii"), offsets
    # Non-ASCII names: decode each (character offsets differ from byte offsets).
    parts = [data[a:b].decode("utf-8", "replace") for a, b in zip(starts.tolist(), ends.tolist())]
    lengths = np.array([len(p) + 1 for p in parts], dtype=np.int64)
    return "".join(p + "\n" for p in parts), np.cumsum(lengths) - lengths


def _rows_columns(data: bytes, starts: np.ndarray, lo: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based line and byte column of each offset in `starts` (sorted, all in [lo, end))."""
    import numpy as np

    base = data.rfind(b"\n", 0, lo) + 1 if lo else 0
    first_row = data.count(b"\n", 0, base) if base else 0
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8, count=end - base, offset=base) == 10) + base
    local = np.searchsorted(newlines, starts)  # newlines before each start
    line_starts = np.concatenate([np.array([base], dtype=np.int64), newlines + 1])
    return local + first_row, starts - line_starts[local]


def _owners(spans: list[tuple[int, int, str]], starts: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The definition span around each offset, as an index into the span names (-1: none): the first span (by
    start) ending after it, when it has begun there; spans of broken code may nest, which this rule resolves
    like a forward merge would."""
    import numpy as np

    if not spans:
        return np.full(len(starts), -1, dtype=np.int32), []
    span_starts = np.array([s[0] for s in spans], dtype=np.int64)
    reach = np.maximum.accumulate(np.array([s[1] for s in spans], dtype=np.int64))
    index = np.searchsorted(reach, starts, side="right")
    inside = index < len(spans)
    inside[inside] &= span_starts[index[inside]] <= starts[inside]
    return np.where(inside, index, -1), [s[2] for s in spans]
