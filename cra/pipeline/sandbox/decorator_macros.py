"""Expand a project's "decorator" macros before tree-sitter reads a unit for what it defines.

Libraries wrap their declarations in macros tree-sitter cannot see through: `int ZEXPORT inflate(strm, flush)`,
`voidpf ZLIB_INTERNAL zcalloc(...)`, `local int helper(void)` (`#define local static`), `extern void *malloc
OF((uInt size))`, `CJSON_PUBLIC(cJSON *) cJSON_Parse(...)`. Read as they are, the macro name passes for the
function's name, the real definition is lost and the unit is never linked for it. Only macros that cannot change
what a unit defines are expanded: ones whose body is empty, storage/inline keywords or attributes, and function-like
ones that hand back their argument (plus such decorations). Nothing else of the preprocessor is imitated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

# Words a decoration may consist of (besides __attribute__((...)), __declspec(...) and other decorator macros).
STORAGE_WORDS = frozenset({"static", "extern", "inline"})
DECORATION_WORDS = STORAGE_WORDS | frozenset({
    "__inline", "__inline__", "__forceinline", "__stdcall", "__cdecl", "__fastcall", "__vectorcall", "__export",
    "_export", "__far", "_far", "far", "__near", "_near", "near", "__huge", "huge", "__pascal", "pascal",
    "WINAPI", "__restrict", "__restrict__", "__extension__",
})
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)(\([^)]*\))?(.*)$", re.M)
_CONTINUATION = re.compile(r"\\\r?\n")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
_ATTRIBUTE = re.compile(r"\b(?:__attribute__|__attribute|__declspec|_declspec)\s*\(")
_WORD = re.compile(r"[A-Za-z_]\w*")
# What the expander steps over: comments, string/char literals, preprocessor lines, then identifiers.
_TOKEN = re.compile(r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|^[ \t]*#(?:\\\n|[^\n])*"
                    r"|[A-Za-z_]\w*", re.S | re.M)


class Decorator(msgspec.Struct, frozen=True):
    """A macro expanded before parsing: `keep` are the storage words its body holds (what linkage it gives);
    `passes_argument`: function-like, expanding to its argument."""

    keep: str = ""
    passes_argument: bool = False


def _without_attributes(body: str) -> str | None:
    """`body` with __attribute__((...))/__declspec(...) groups removed; None when their parentheses do not close."""
    out = []
    pos = 0
    while (m := _ATTRIBUTE.search(body, pos)) is not None:
        out.append(body[pos:m.start()])
        depth, i = 1, m.end()
        while i < len(body) and depth:
            depth += {"(": 1, ")": -1}.get(body[i], 0)
            i += 1
        if depth:
            return None
        pos = i
    out.append(body[pos:])
    return " ".join(out)


def _classify(params: str | None, body: str, known: dict[str, Decorator]) -> Decorator | None:
    stripped = _without_attributes(_COMMENT.sub(" ", body))
    if stripped is None:
        return None
    words = stripped.split()
    argument = ""
    if params is not None:
        names = [p.strip() for p in params.strip("()").split(",")]
        if len(names) != 1 or not _WORD.fullmatch(names[0]) or words.count(names[0]) != 1:
            return None
        argument = names[0]
    keep = []
    for word in words:
        if word == argument:
            continue
        if word in STORAGE_WORDS:
            keep.append(word)
        elif word in DECORATION_WORDS:
            continue
        elif (inner := known.get(word)) is not None and not inner.passes_argument:
            keep.extend(inner.keep.split())
        else:
            return None
    return Decorator(keep=" ".join(keep), passes_argument=params is not None)


Definitions = dict[str, list[tuple[str | None, str]]]  # macro name -> (parameter list or None, body) per #define


def macro_definitions(text: str) -> Definitions:
    """Every #define of one file."""
    found: Definitions = {}
    if "define" in text:
        for m in _DEFINE.finditer(_CONTINUATION.sub(" ", text)):
            found.setdefault(m.group(1), []).append((m.group(2), m.group(3)))
    return found


def decorator_macros(definitions: Iterable[Definitions]) -> dict[str, Decorator]:
    """The decorator macros among these files' #defines. A macro defined several ways (one per platform) counts
    when one of its definitions is a decoration: the non-static one first (what the project exports)."""
    found: Definitions = {}
    for defs in definitions:
        for name, entries in defs.items():
            found.setdefault(name, []).extend(entries)
    known: dict[str, Decorator] = {}
    for _ in range(3):  # a decorator defined through another (#define ZEXPORT ZLIB_API) resolves in a later pass
        for name, entries in found.items():
            kinds = [d for params, body in entries if (d := _classify(params, body, known)) is not None]
            if kinds:
                known[name] = min(kinds, key=lambda d: "static" in d.keep)
    return known


def _closing_paren(text: str, start: int) -> int:
    """Index just past the parenthesis matching the one at `start`; -1 when it does not close."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return -1


def expand_decorators(text: str, macros: dict[str, Decorator]) -> str:
    """`text` with the decorator macros expanded outside comments, strings and preprocessor lines. Line breaks
    are kept, so line numbers do not move."""
    if not macros:
        return text
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        macro = macros.get(m.group())
        if macro is None or m.start() < pos:
            continue
        if not macro.passes_argument:
            out += [text[pos:m.start()], macro.keep]
            pos = m.end()
            continue
        open_at = m.end()
        while open_at < len(text) and text[open_at] in " \t\r\n":
            open_at += 1
        if open_at >= len(text) or text[open_at] != "(" or (close := _closing_paren(text, open_at)) < 0:
            continue
        prefix = f"{macro.keep} " if macro.keep else ""
        out += [text[pos:m.start()], prefix, expand_decorators(text[open_at + 1:close - 1], macros)]
        pos = close
    out.append(text[pos:])
    return "".join(out)
